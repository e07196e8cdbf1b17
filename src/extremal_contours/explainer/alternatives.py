"""Other regions the search found: distinct from the answer and from each other, best first.

A search scores many binary regions on its way (the scanned discs, the starts at each halving, the
checks of the last phase); the best one is the answer. The others that overlap the answer, and every
better alternative, by an IoU below :data:`MAX_IOU` are *alternatives*: places that keep the
evidence too. They cost no extra optimisation, only their rasterisation (and, to report them, one
scoring pass each).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .multicontour import draw_regions
from .objective import Candidates

__all__ = ["MAX_IOU", "distinct"]

#: Two regions overlapping by at least this IoU are the same explanation.
MAX_IOU = 0.3


def _iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of one flat bool mask ``a (P,)`` with each of ``b (C, P)``."""
    inter = (a[None] & b).sum(1).float()
    union = (a[None] | b).sum(1).float()
    return inter / union.clamp(min=1)


def distinct(
    candidates: Candidates,
    answer: tuple[Tensor, Tensor, Tensor],
    area: Tensor,
    extent: tuple[float, float],
    size: tuple[int, int],
    count: int,
    max_iou: float = MAX_IOU,
) -> list[list[int]]:
    """Per group, the indices (into ``candidates``) of up to ``count`` alternatives, best first.

    Args:
        candidates: every region the search scored.
        answer: the chosen ``(centre, coeffs, mix)`` per group ``(G, M, ...)``.
        area: ``(G,)`` each group's target area.
        extent, size: the image's normalised extent and ``(H, W)``.
        count: most alternatives per group.
        max_iou: regions overlapping the answer or a better alternative this much are left out.
    """
    groups = area.shape[0]
    out: list[list[int]] = [[] for _ in range(groups)]
    if count < 1:
        return out
    height, width = size
    with torch.no_grad():
        chosen, _, _ = draw_regions(area, *answer, extent, height, width, None)
        masks, _, _ = draw_regions(area[candidates.group], candidates.centre, candidates.coeffs, candidates.mix, extent, height, width, None)
    chosen, masks = chosen.flatten(1).bool(), masks.flatten(1).bool()
    for g in range(groups):
        rows = (candidates.group == g).nonzero()[:, 0]
        if rows.numel() == 0:
            continue
        order = rows[candidates.value[rows].argsort(descending=True, stable=True)]
        kept = [chosen[g]]
        for i in order.tolist():
            if len(out[g]) == count:
                break
            if bool((_iou(masks[i], torch.stack(kept)) < max_iou).all()):
                out[g].append(i)
                kept.append(masks[i])
    return out
