"""Area sweeps: importance contour maps and fidelity-area profiles.

A sweep explains each image at several areas in one batch (see
:meth:`~extremal_contours.explainer.ExtremalContour.sweep`). From its binary masks:

- the *importance contour map* gives each pixel the share of the sweep's areas whose region holds
  it, weighted so that a pixel that enters at the smallest area scores highest: ``1 - a_first`` where
  ``a_first`` is the smallest area whose region contains the pixel (0 for pixels never inside);
- the *fidelity-area profile* is the preserve ratio and delete drop against area; its one-number
  summary is the smallest area whose region keeps ``level`` (90%) of the clean score.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .result import ContourResult

__all__ = ["AUTO_AREAS", "DEFAULT_AREAS", "importance_map", "nesting", "profile", "smallest_sufficient_area", "write_profile_csv"]

DEFAULT_AREAS = (0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8)
#: The areas ``explain --area auto`` tries in one run, picking the smallest that keeps enough of the class.
AUTO_AREAS = (0.05, 0.1, 0.2, 0.4)


def importance_map(masks: Tensor, areas: Sequence[float]) -> Tensor:
    """``(N, 1, H, W)`` map from sweep masks ``(N, A, 1, H, W)`` at increasing ``areas``: ``1 - a`` for
    the smallest area ``a`` whose region contains the pixel, 0 outside every region."""
    order = np.argsort(areas)
    out = torch.zeros(masks.shape[0], 1, *masks.shape[-2:])
    for j in reversed(order):  # smallest area last, so it wins
        out = torch.where(masks[:, j].bool(), torch.tensor(1.0 - areas[j]), out)
    return out


def nesting(masks: Tensor, areas: Sequence[float]) -> Tensor:
    """Share of each smaller region inside the next larger one, ``(N, A - 1)`` in area order."""
    order = list(np.argsort(areas))
    values = []
    for small, large in pairwise(order):
        a = masks[:, small].flatten(1).bool()
        b = masks[:, large].flatten(1).bool()
        values.append((a & b).sum(1).float() / a.sum(1).clamp(min=1).float())
    return torch.stack(values, 1)


def profile(result: ContourResult, image: int = 0) -> list[dict[str, float]]:
    """Rows ``{area, visible_area, preserve_ratio, delete_drop}`` in area order."""
    order = np.argsort(result.areas)
    return [
        {
            "area": float(result.areas[j]),
            "visible_area": float(result.visible_area[image, j]),
            "preserve_ratio": float(result.preserve_ratio[image, j]),
            "delete_drop": float(result.delete_drop[image, j]),
        }
        for j in order
    ]


def smallest_sufficient_area(rows: list[dict[str, float]], level: float = 0.9) -> float | None:
    """The smallest swept area whose region alone keeps ``level`` of the clean score (``None`` if none)."""
    for row in rows:
        if row["preserve_ratio"] >= level:
            return row["area"]
    return None


def write_profile_csv(rows: list[dict[str, float]], path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["area", "visible_area", "preserve_ratio", "delete_drop"])
        writer.writeheader()
        writer.writerows(rows)
    return path
