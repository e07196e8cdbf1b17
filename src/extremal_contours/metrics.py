"""Metrics on attribution maps and masks: tensor functions, batched over the first dimension.

Maps are ``(N, 1, H, W)`` or ``(N, H, W)`` (higher = more important); ground-truth regions and masks
are bool of the same spatial size. Definitions follow Quantus where it has the metric (the tests
compare against it); the fidelity scores use the model and the same perturbation as the methods.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .perturbation import Perturbation

__all__ = [
    "fidelity",
    "iou",
    "mean_pairwise_iou",
    "top_fraction_mask",
]


def _flat(x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], -1)


def top_fraction_mask(maps: Tensor, area: float) -> Tensor:
    """The ``round(area * H * W)`` highest-valued pixels of each map as a bool mask (ties broken by
    position), so every method can be compared at the same area."""
    flat = _flat(maps).float()
    k = max(1, round(area * flat.shape[1]))
    index = flat.topk(k, dim=1).indices
    out = torch.zeros_like(flat, dtype=torch.bool).scatter_(1, index, True)
    return out.view(maps.shape)


def iou(a: Tensor, b: Tensor) -> Tensor:
    """Intersection over union of bool masks, per row ``(N,)`` (1 where both are empty)."""
    a, b = _flat(a).bool(), _flat(b).bool()
    inter = (a & b).sum(1).float()
    union = (a | b).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def mean_pairwise_iou(masks: Tensor) -> Tensor:
    """Run-to-run consistency: masks ``(R, N, ...)`` of ``R`` runs -> mean IoU over run pairs ``(N,)``."""
    runs = masks.shape[0]
    if runs < 2:
        raise ValueError("run-to-run IoU needs at least two runs")
    values = [iou(masks[i], masks[j]) for i in range(runs) for j in range(i + 1, runs)]
    return torch.stack(values).mean(0)


@torch.no_grad()
def fidelity(
    model: Callable[[Tensor], Tensor],
    x: Tensor,
    masks: Tensor,
    classes: Tensor,
    perturb: Perturbation | None = None,
    batch_size: int = 32,
) -> dict[str, Tensor]:
    """Preserve and delete scores of binary masks, with the same perturbation as the methods.

    Args:
        model: the classifier.
        x: ``(N, C, H, W)`` images.
        masks: ``(N, 1, H, W)`` bool.
        classes: ``(N,)`` target classes.
        perturb: the perturbation (default: blur pyramid of ``x``).

    Returns:
        ``clean``, ``preserve``, ``delete`` class probabilities ``(N,)`` and ``preserve_ratio``
        (preserve / clean) and ``delete_drop`` (1 - delete / clean).
    """
    perturb = perturb or Perturbation(x, "blur")
    n = x.shape[0]
    index = torch.arange(n, device=x.device)
    m = masks.to(x.dtype).reshape(n, 1, *x.shape[-2:])

    def prob(batch: Tensor) -> Tensor:
        out = torch.cat([model(batch[s : s + batch_size]) for s in range(0, batch.shape[0], batch_size)])
        return out.float().softmax(1).gather(1, classes[:, None].to(out.device))[:, 0]

    clean = prob(x)
    keep = prob(perturb(m, index))
    drop = prob(perturb(1 - m, index))
    return {
        "clean": clean,
        "preserve": keep,
        "delete": drop,
        "preserve_ratio": keep / clean,
        "delete_drop": 1 - drop / clean,
    }
