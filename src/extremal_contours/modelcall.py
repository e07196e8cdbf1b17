"""Calling a user's model: the one place that knows how.

Every explainer, baseline, the speed report and the benchmark run the user's model through this
module, so that they all leave it exactly as given and fail the same way:

- :func:`eval_mode` runs the model in eval mode and gives every module its own ``training`` flag
  back afterwards;
- :func:`model_place` says where the model lives (device and dtype), so inputs go there;
- :class:`ModelCall` feeds 4-D inputs in channels-last layout where that is faster (on the CPU,
  convolutions run about 1.7x faster that way; only the *input* is laid out so, the model's weights
  are untouched). A model that refuses such an input (one that calls ``.view`` on it, say) is run
  in the contiguous layout from then on. Any other error is the model's own and is raised as it is;
  running out of memory says to lower the batch size;
- :class:`ModelRunner` adds the precision (autocast while optimising, the model's own precision for
  reported scores) and the output checks;
- :func:`check_output` turns a model output that is not one ``(N, D)`` tensor into a one-line error.

This module imports nothing else of this package.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "PRECISIONS",
    "ModelCall",
    "ModelRunner",
    "OutOfMemory",
    "check_output",
    "eval_mode",
    "model_place",
    "no_autocast",
    "progress_disabled",
    "wants_channels_last",
]

#: The model's precision while optimising (``None``: as given, no autocast).
PRECISIONS: dict[str, torch.dtype | None] = {"float32": None, "bfloat16": torch.bfloat16}


class OutOfMemory(ValueError):
    """The model ran out of memory on a batch; the message says to lower the batch size."""


@contextmanager
def eval_mode(model: Callable[..., Any]) -> Iterator[None]:
    """Run ``model`` in eval mode and give every module its own ``training`` flag back afterwards (a
    plain callable, which has no such flags, runs as it is)."""
    if not isinstance(model, nn.Module):
        yield
        return
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, flag in flags:
            module.training = flag


def model_place(model: Callable[..., Any], x: Tensor) -> tuple[torch.device, torch.dtype]:
    """Device and floating dtype of the model's first parameter (``x``'s for a callable or a model
    without parameters)."""
    if isinstance(model, nn.Module):
        for p in model.parameters():
            return p.device, (p.dtype if p.is_floating_point() else x.dtype)
    return x.device, x.dtype


def no_autocast(device_type: str) -> Any:
    """A context that turns a caller's autocast off on ``device_type`` (none where it has no autocast)."""
    try:
        return torch.autocast(device_type, enabled=False)
    except RuntimeError:
        return nullcontext()


def progress_disabled(progress: bool | None) -> bool | None:
    """tqdm's ``disable`` for a ``progress`` option (``None``: tqdm decides, on a terminal only)."""
    return None if progress is None else not progress


def check_output(out: Any, rows: int) -> Tensor:
    """``out`` if it is one tensor ``(rows, D, ...)``, else a one-line error saying how to wrap the model."""
    if isinstance(out, (tuple, list)):
        raise TypeError(
            f"the model returned a {type(out).__name__} of {len(out)} items; the explainer needs one tensor "
            "(N, classes or features): wrap the model, e.g. lambda x: model(x)[0]"
        )
    if isinstance(out, dict):
        keys = ", ".join(map(str, list(out)[:5]))
        raise TypeError(
            f"the model returned a dict (keys: {keys}); the explainer needs one tensor (N, classes or features): "
            "wrap the model, e.g. lambda x: model(x)['logits']"
        )
    if not isinstance(out, Tensor):
        raise TypeError(f"the model returned {type(out).__name__}; the explainer needs a tensor (N, classes or features)")
    if out.dim() < 2 or out.shape[0] != rows:
        raise ValueError(f"the model returned shape {tuple(out.shape)} for {rows} images; expected ({rows}, classes or features)")
    return out


def wants_channels_last(option: bool | None, device: torch.device) -> bool:
    """``option`` itself, or on ``None`` (auto): channels-last on the CPU only (on CUDA the gain
    depends on the model and the precision, so the input is left as it is)."""
    return device.type == "cpu" if option is None else bool(option)


def _out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc)
    return "out of memory" in text.lower() or "can't allocate memory" in text


class ModelCall:
    """Call ``model`` on 4-D inputs in channels-last layout when ``enabled``.

    The first time the model fails on a channels-last input, it is run once more on the contiguous
    input: if that works, the model refuses the layout and gets contiguous inputs from then on; if it
    fails too, the error is the model's own and is raised (channels-last stays on). Running out of
    memory is never taken for a layout refusal: it raises :class:`OutOfMemory`."""

    def __init__(self, model: Callable[[Tensor], Any], enabled: bool) -> None:
        self.model = model
        self.enabled = enabled

    def __call__(self, x: Tensor) -> Any:
        try:
            if not self.enabled or x.dim() != 4:
                return self.model(x.contiguous())
            try:
                return self.model(x.contiguous(memory_format=torch.channels_last))
            except RuntimeError as exc:
                if _out_of_memory(exc):
                    raise
                out = self.model(x.contiguous())  # raises the model's own error if it is not the layout
                self.enabled = False
                return out
        except RuntimeError as exc:
            if _out_of_memory(exc):
                raise OutOfMemory(
                    f"out of memory running the model on a batch of {x.shape[0]} images of {x.shape[-2]}x{x.shape[-1]}; "
                    "lower the batch size (batch_size=, --batch-size)"
                ) from None
            raise


class ModelRunner:
    """The model as the explainers call it: in ``layout`` (see :class:`ModelCall`), its output checked,
    in ``precision`` while optimising and in the model's own precision for the reported scores.

    Args:
        model: the user's model or callable.
        channels_last: the layout option (``None``: on the CPU only).
        device: where the model lives.
        precision: a key of :data:`PRECISIONS`.
    """

    def __init__(self, model: Callable[[Tensor], Any], channels_last: bool | None, device: torch.device, precision: str = "float32") -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.call = ModelCall(model, wants_channels_last(channels_last, device))
        self.precision = precision

    def __call__(self, x: Tensor) -> Tensor:
        """The output on ``x`` in the model's own precision, even under a caller's autocast."""
        with no_autocast(x.device.type):
            return check_output(self.call(x), x.shape[0])

    def optimising(self, x: Tensor) -> Tensor:
        """The output on ``x`` in the runner's precision (float32 or wider)."""
        low = PRECISIONS[self.precision]
        if low is None:
            return check_output(self.call(x), x.shape[0])
        try:
            context = torch.autocast(x.device.type, dtype=low)
        except RuntimeError as exc:
            raise ValueError(f"precision={self.precision!r} needs autocast, which {x.device.type} does not have: {exc}") from exc
        with context:
            out = check_output(self.call(x), x.shape[0])
        return out.to(torch.promote_types(out.dtype, torch.float32))
