"""Small overlay pictures of a benchmark's binary masks: one PNG per (method, picture, area) under
``OUT/overlays/<method>/``, so that a report can show the same picture across methods side by side.

The overlays are drawn on the picture as the model saw it (the preprocessed input), at most
:data:`OVERLAY_SIDE` pixels a side, as 8-bit palette PNGs (a few kB each: a large benchmark makes many).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image
from scipy import ndimage
from torch import Tensor

from ..inputs import area_tag
from ..jobs.naming import safe_name
from ..viz import PALETTE

__all__ = ["OVERLAY_FOLDER", "OVERLAY_SIDE", "mask_overlay", "overlay_file", "save_overlays"]

#: The overlays' folder under the benchmark's output folder.
OVERLAY_FOLDER = "overlays"
#: Longest side of an overlay, in pixels.
OVERLAY_SIDE = 192


def overlay_file(out: Path, method: str, image: str, area: float) -> Path:
    """Where the overlay of ``method``'s mask of the picture named ``image`` at ``area`` lies: its
    name's folders kept (names are unique within a dataset), each part made file-system safe."""
    parts = [safe_name(p) for p in PurePosixPath(image).parts if p != "/"] or ["image"]
    parts[-1] = f"{parts[-1]}_{area_tag(area)}.png"
    return out / OVERLAY_FOLDER / safe_name(method) / Path(*parts)


def mask_overlay(picture: np.ndarray, mask: np.ndarray, side: int = OVERLAY_SIDE, dim: float = 0.45) -> Image.Image:
    """The picture ``(H, W, 3)`` uint8 with the binary ``mask`` ``(H, W)`` tinted and outlined and the
    rest dimmed, at most ``side`` pixels a side (as the explain command's overlays look)."""
    h, w = mask.shape
    factor = min(1.0, side / max(h, w))
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    base = np.asarray(Image.fromarray(picture).resize(size, Image.Resampling.BILINEAR), dtype=np.float32)
    inside = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.Resampling.NEAREST)) > 0
    colour = np.array([int(PALETTE[0][k : k + 2], 16) for k in (1, 3, 5)], dtype=np.float32)
    out = np.where(inside[..., None], 0.75 * base + 0.25 * colour, dim * base)
    edge = inside & ~ndimage.binary_erosion(inside, border_value=1)
    if max(size) >= 96:  # a line of 2-3 px at the usual 192; on tiny pictures one pixel
        edge = ndimage.binary_dilation(edge)
    out[edge] = colour
    return Image.fromarray(out.clip(0, 255).astype(np.uint8))


def save_overlays(
    out: Path, method: str, names: Sequence[str], pictures: Tensor, masks: Tensor, areas: Sequence[float]
) -> list[Path]:
    """Write the overlay of every picture and area: ``pictures`` ``(N, 3, H, W)`` in [0, 1] (as the
    model saw them), ``masks`` ``(N, A, 1, H, W)`` binary; each file written whole (through a
    temporary file) so that a killed run leaves no half picture."""
    rgb = (pictures.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    binary = masks.detach().cpu().bool().numpy()
    written = []
    for i, name in enumerate(names):
        for j, area in enumerate(areas):
            path = overlay_file(out, method, name, area)
            path.parent.mkdir(parents=True, exist_ok=True)
            picture = mask_overlay(rgb[i], binary[i, j, 0]).quantize(colors=128, method=Image.Quantize.MEDIANCUT)
            tmp = path.with_name(path.name + ".tmp")
            picture.save(tmp, format="PNG")
            os.replace(tmp, path)
            written.append(path)
    return written
