"""RISE (Petsiuk, Das and Saenko, BMVC 2018), written here: random masks, batched, seeded.

Each random mask is a coarse ``grid x grid`` binary pattern (each cell kept with probability
``p``), upsampled bilinearly to a slightly larger size and cropped at a random offset, so the
masks are smooth and not aligned to the grid. The saliency of a pixel is the average score of the
masked images weighted by how much each mask kept that pixel, divided by ``p``. The masked image
uses the same perturbation operator as the other methods (blur by default) rather than zeros.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..perturbation import Perturbation

__all__ = ["rise", "rise_masks"]


def rise_masks(count: int, height: int, width: int, grid: int = 7, p: float = 0.5, generator: torch.Generator | None = None) -> Tensor:
    """``count`` smooth random masks ``(count, 1, H, W)`` in ``[0, 1]``."""
    cell_h, cell_w = math.ceil(height / grid), math.ceil(width / grid)
    coarse = (torch.rand(count, 1, grid, grid, generator=generator) < p).float()
    up = F.interpolate(coarse, size=((grid + 1) * cell_h, (grid + 1) * cell_w), mode="bilinear", align_corners=False)
    dy = torch.randint(0, cell_h, (count,), generator=generator)
    dx = torch.randint(0, cell_w, (count,), generator=generator)
    rows = torch.arange(height)[None, :] + dy[:, None]  # (count, H)
    cols = torch.arange(width)[None, :] + dx[:, None]  # (count, W)
    picked = up[:, 0].gather(1, rows[:, :, None].expand(count, height, up.shape[-1]))
    return picked.gather(2, cols[:, None, :].expand(count, height, width))[:, None]


def rise(
    run: Callable[[Tensor], Tensor],
    x: Tensor,
    score: Callable[[Tensor, Tensor], Tensor],
    perturb: Perturbation,
    *,
    count: int = 1000,
    grid: int = 7,
    p: float = 0.5,
    batch_size: int = 32,
    seed: int = 0,
) -> tuple[Tensor, int]:
    """RISE saliency ``(N, 1, H, W)`` and the number of forward passes.

    Args:
        run: the model (no gradient needed).
        x: ``(N, C, H, W)`` images.
        score: ``(output, image index) -> (B,)`` score of each row.
        perturb: the perturbation the masks blend with.
        count, grid, p: number of masks, coarse grid size and keep probability.
        batch_size: most images per forward.
        seed: seeds the masks; the same masks are used for every image.
    """
    n, _, h, w = x.shape
    generator = torch.Generator().manual_seed(seed)
    masks = rise_masks(count, h, w, grid, p, generator).to(x.device, x.dtype)
    saliency = torch.zeros(n, 1, h, w, device=x.device, dtype=torch.float32)
    passes = 0
    with torch.no_grad():
        for i in range(n):
            for start in range(0, count, batch_size):
                m = masks[start : start + batch_size]
                index = torch.full((m.shape[0],), i, device=x.device, dtype=torch.long)
                out = run(perturb(m, index))
                s = score(out, index).float()
                saliency[i] += (s[:, None, None, None] * m.float()).sum(0)
                passes += m.shape[0]
    return saliency / (count * p), passes
