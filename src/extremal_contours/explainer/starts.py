"""Where the contours start, and which survive each halving.

Starts are placed by a *scan*: discs of the target area on a ``scan x scan`` grid are scored
(forward passes only) and the best become starts (one contour per start), or spread apart (several
contours per start). ``scan=0`` places them on a fixed grid instead. Successive halving then keeps,
per (image, area), the starts whose binary regions score best.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .config import ContourSettings
from .objective import Best, Problem, Rows

__all__ = ["grid", "place", "spread", "top_families", "top_per_group"]


def grid(side: int, w: float, h: float, device: torch.device) -> Tensor:
    """Cell centres of a ``side x side`` grid over the image, ``(side^2, 2)``, row-major."""
    ticks = (torch.arange(side, device=device, dtype=torch.float32) + 0.5) / side - 0.5
    gy, gx = torch.meshgrid(ticks * h, ticks * w, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)


def place(
    problem: Problem,
    settings: ContourSettings,
    group_image: Tensor,
    group_area: Tensor,
    best: Best | None,
    contours: int = 1,
) -> Tensor:
    """Initial centres ``(groups, starts, M, 2)``: the best discs of a scan, or a fixed grid.

    One contour: the scanned discs are candidate answers too (``best`` remembers them), so no answer
    scores below the best disc. Several: the discs have ``1/M`` of the area; start ``s`` puts its
    first contour on the ``s``-th best disc and each next one on the best disc at least two disc radii
    from those already placed (else the farthest)."""
    w, h = problem.extent
    device = problem.x.device
    groups = group_image.shape[0]
    if settings.scan == 0:
        side = math.ceil(math.sqrt(settings.starts * contours))
        cells = grid(side, w, h, device)
        # Centre first, then the rest of the grid by distance to the centre.
        order = torch.argsort(cells.norm(dim=1), stable=True)
        if contours == 1:
            return cells[order[: settings.starts]][None, :, None].expand(groups, -1, -1, -1)
        value = -cells.norm(dim=1)[None].expand(groups, -1)
    else:
        cells = grid(settings.scan, w, h, device)  # (G, 2)
        g = cells.shape[0]
        rows = Rows(
            image=group_image.repeat_interleave(g),
            group=torch.arange(groups, device=device).repeat_interleave(g),
            area=group_area.repeat_interleave(g) / contours,
            flip=torch.zeros(groups * g, dtype=torch.bool, device=device),
        )
        centres = cells.repeat(groups, 1)[:, None]
        coeffs = torch.zeros(groups * g, 1, settings.harmonics, 2, device=device)
        mix = torch.zeros(groups * g, 1, device=device)
        value = problem.evaluate(rows, centres, coeffs, mix)
        if contours == 1:
            if best is not None:
                best.remember(value, rows, centres, coeffs, mix)
            top = value.view(groups, g).topk(settings.starts, dim=1).indices  # (groups, starts)
            return cells[top][:, :, None]
        value = value.view(groups, g)
    apart = 2 * torch.sqrt(group_area / contours / math.pi)  # two disc radii, (groups,)
    return spread(value, cells, settings.starts, contours, apart)


def spread(value: Tensor, cells: Tensor, starts: int, contours: int, apart: Tensor) -> Tensor:
    """Centres ``(groups, starts, M, 2)`` from candidates ``cells (G, 2)`` scored ``value (groups, G)``:
    start ``s`` begins at the ``s``-th best candidate, each further contour takes the best candidate
    at least ``apart`` from those placed, or the farthest one if none is."""
    groups, g = value.shape
    order = value.argsort(dim=1, descending=True, stable=True).tolist()
    dist = torch.cdist(cells, cells)
    out = torch.empty(groups, starts, contours, 2, device=cells.device)
    for i in range(groups):
        for s in range(starts):
            chosen = [order[i][s % g]]
            while len(chosen) < contours:
                gap = dist[:, chosen].min(1).values
                free = [j for j in order[i] if j not in chosen and gap[j] >= apart[i]]
                chosen.append(free[0] if free else int(gap.argmax()))
            out[i, s] = cells[chosen]
    return out


def top_per_group(value: Tensor, groups: int, keep: int) -> Tensor:
    """Indices of the ``keep`` best rows of each group (rows of a group are contiguous and equal in number)."""
    per = value.shape[0] // groups
    top = value.view(groups, per).topk(min(keep, per), dim=1).indices
    offset = torch.arange(groups, device=value.device)[:, None] * per
    return (top + offset).reshape(-1).sort().values


def top_families(value: Tensor, images: int, areas: int, keep: int) -> Tensor:
    """Row indices of the ``keep`` best families per image (rows ordered image, area, family; a
    family's score is the sum over its areas), for every area, in row order."""
    per = value.shape[0] // (images * areas)
    total = value.view(images, areas, per).sum(1)  # (images, per)
    top = total.topk(min(keep, per), dim=1).indices.sort(dim=1).values  # (images, keep)
    base = (torch.arange(images * areas, device=value.device) * per).view(images, areas, 1)
    return (base + top[:, None, :]).reshape(-1)
