"""Regions of one or several contours, the nesting penalty of sweeps, and ``contours="auto"``.

A region is the union of ``M`` contours; with ``M = 1`` it is one contour whose exact area is the
region's. With several, contour ``i`` gets ``softmax(mix)_i`` of the area while optimising, and the
binary union is refitted to the exact area (overlaps make it smaller).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from .. import contour as C
from ..result import ContourResult

__all__ = ["choose", "draw_regions", "nesting_gradient", "relative_objective"]


def draw_regions(
    area: Tensor,
    centre: Tensor,
    coeffs: Tensor,
    mix: Tensor,
    extent: tuple[float, float],
    height: int,
    width: int,
    edge: float | None,
) -> tuple[Tensor, Tensor, Tensor]:
    """``(union mask (R, 1, H, W), parts (R, M, 1, H, W), scales (R, M))`` of regions of ``area (R,)``.

    ``edge=None`` draws binary masks (the union refitted to the exact area for several contours);
    otherwise soft masks with that edge width in pixels."""
    m = centre.shape[1]
    if m == 1:
        scale = C.scale_for_area(coeffs[:, 0], area, centre[:, 0], extent)[:, None]
    elif edge is None:
        scale = C.scales_for_union(centre, coeffs, mix.softmax(-1), area, extent, height, width)
    else:
        share = mix.softmax(-1)
        flat = C.scale_for_area(coeffs.flatten(0, 1), (area[:, None] * share).flatten(), centre.flatten(0, 1), extent)
        scale = flat.view(-1, m)
    union, parts = C.rasterize_union(centre, coeffs, scale, height, width, edge)
    return union, parts, scale


def overlap_penalty(pieces: Tensor, area: Tensor) -> Tensor:
    """Pairwise overlap ``sum_{i<j} |R_i n R_j|`` of soft contour masks ``(R, M, 1, H, W)``, relative
    to each row's target area ``(R,)``, summed over rows."""
    total = pieces.sum(1)
    pairs = 0.5 * (total * total - (pieces * pieces).sum(1))
    return (pairs.mean((1, 2, 3)) / area).sum()


def nesting_gradient(
    weight: float,
    centre: Tensor,
    raw: Tensor,
    precond: Tensor,
    area: Tensor,
    areas: tuple[float, ...],
    extent: tuple[float, float],
    size: tuple[int, int],
    edge: float,
) -> tuple[Tensor, Tensor]:
    """Gradient of ``weight * sum_j |R_j outside R_j+1| / |R_j|`` over consecutive areas of each image
    (rows ordered image, area, family; one contour per row), for the centres and raw harmonics. Drawn
    at a quarter of the resolution (at least 32 px a side): geometry only, no model pass."""
    height, width = size
    factor = min(max(1, min(height, width) // 32), 4)
    h, w = max(8, height // factor), max(8, width // factor)
    order = sorted(range(len(areas)), key=lambda j: areas[j])
    n = centre.shape[0] // len(areas)
    with torch.enable_grad():
        c_leaf, k_leaf = centre[:, 0], raw[:, 0] * precond
        scale = C.scale_for_area(k_leaf, area, c_leaf, extent)
        masks = C.rasterize(c_leaf, k_leaf, scale, h, w, edge=edge / factor).view(n, len(areas), -1, h * w)
        small, large = masks[:, order[:-1]], masks[:, order[1:]]
        outside = (small - large).clamp(min=0).sum(-1) / small.sum(-1).clamp(min=1.0)
        loss = weight * outside.sum()
        grads = torch.autograd.grad(loss, [centre, raw])
    return grads[0], grads[1]


def relative_objective(result: ContourResult) -> Tensor:
    """``(N, A)`` the binary regions' objective relative to the clean score, as optimised."""
    norm = result.clean_score.abs().clamp(min=0.1)[:, None]
    keep, drop = result.preserve_score / norm, result.delete_score / norm
    return {"preserve": keep, "delete": -drop, "dual": keep - drop}[result.variant]


_CHOSEN = ("centre", "coeffs", "scale", "masks", "soft_masks", "polygons", "visible_area", "preserve_score",
           "delete_score", "preserve_probability", "delete_probability", "history")  # fmt: skip


def choose(old: ContourResult, new: ContourResult, better: Tensor) -> ContourResult:
    """``old`` with the (image, area) regions where ``better (N, A)`` is true taken from ``new``; the
    costs add up."""
    parts, new_parts = old.all_parts(), new.all_parts()
    slots = max(parts.centre.shape[2], new_parts.centre.shape[2])
    parts, new_parts = parts.padded(slots), new_parts.padded(slots)

    def pick(a: Tensor, b: Tensor) -> Tensor:
        return torch.where(better.view(*better.shape, *([1] * (a.dim() - 2))), b, a)

    changes: dict[str, Any] = {}
    for name in _CHOSEN:
        a, b = getattr(old, name), getattr(new, name)
        if a is not None:
            changes[name] = pick(a, b)
    changes["parts"] = replace(
        parts,
        centre=pick(parts.centre, new_parts.centre),
        coeffs=pick(parts.coeffs, new_parts.coeffs),
        scale=pick(parts.scale, new_parts.scale),
        polygons=pick(parts.polygons, new_parts.polygons),
        count=torch.where(better, new_parts.count, parts.count),
    )
    # Each flag from the region kept; alternatives are kept for one contour per region only.
    shared = set(old.flags) & set(new.flags)
    changes["flags"] = {k: torch.where(better, new.flags[k], old.flags[k]) for k in sorted(shared)}
    changes["alternatives"] = None
    cost = dict(old.cost)
    for key in ("seconds", "forward_backward", "forward"):
        cost[key] = old.cost.get(key, 0) + new.cost.get(key, 0)
    for key in ("step_batches", "eval_batches"):
        cost[key] = list(old.cost.get(key, [])) + list(new.cost.get(key, []))
    return replace(old, **changes, cost=cost)
