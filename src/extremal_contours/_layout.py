"""The memory layout the explainers feed the model in.

On the CPU, PyTorch's convolutions run markedly faster on channels-last inputs (EfficientNet-Lite0,
224 x 337, a batch of 4: forward+backward 1.7x, forward 1.6x; ``docs/BENCHMARKS.md``). Only the
*input* is laid out that way: the model's own weights and buffers are not touched. A model that
cannot take such an input (one that calls ``.view`` on it, say) is retried once in the contiguous
layout, which is then kept.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor


def wants_channels_last(option: bool | None, device: torch.device) -> bool:
    """``option`` itself, or on ``None`` (auto): channels-last on the CPU only (on CUDA the gain
    depends on the model and the precision, so the input is left as it is)."""
    return device.type == "cpu" if option is None else bool(option)


class ModelCall:
    """Call ``model`` on 4-D inputs in channels-last layout when ``enabled``; falls back to the
    contiguous layout for good the first time the model rejects a channels-last input."""

    def __init__(self, model: Callable[[Tensor], Any], enabled: bool) -> None:
        self.model = model
        self.enabled = enabled

    def __call__(self, x: Tensor) -> Any:
        if not self.enabled or x.dim() != 4:
            return self.model(x)
        try:
            return self.model(x.contiguous(memory_format=torch.channels_last))
        except RuntimeError:
            self.enabled = False
            return self.model(x.contiguous())
