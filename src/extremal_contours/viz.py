"""Pictures of explanations. Reads arrays and polygons; never runs a model.

Colours are from the Okabe-Ito palette (safe for the common colour-vision deficiencies).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["PALETTE", "draw_overlay", "mask_image"]

#: Okabe-Ito colours, in the order contours are drawn.
PALETTE = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")


def _rgb(colour: str) -> tuple[int, int, int]:
    colour = colour.lstrip("#")
    return int(colour[0:2], 16), int(colour[2:4], 16), int(colour[4:6], 16)


def draw_overlay(
    image: Image.Image,
    polygons: Sequence[np.ndarray],
    *,
    colours: Sequence[str] = PALETTE,
    dim: float = 0.45,
    fill: float = 0.25,
    width: int | None = None,
) -> Image.Image:
    """The image with each region filled lightly, outlined, and the rest dimmed.

    Args:
        image: the picture (any size).
        polygons: closed outlines ``(P, 2)`` as ``(x, y)`` in the picture's pixel coordinates.
        colours: one colour per polygon (cycled).
        dim: brightness kept outside every region (1 = no dimming).
        fill: opacity of the fill inside each region.
        width: outline width in pixels (default: about 1/150 of the picture's diagonal, at least 2).

    Returns:
        An RGB image of the same size.
    """
    base = image.convert("RGB")
    w, h = base.size
    if width is None:
        width = max(2, round((w * w + h * h) ** 0.5 / 150))
    inside = Image.new("L", base.size, 0)
    draw_inside = ImageDraw.Draw(inside)
    for poly in polygons:
        draw_inside.polygon([tuple(p) for p in np.asarray(poly, dtype=float).tolist()], fill=255)
    dark = Image.eval(base, lambda v: int(v * dim))
    out = Image.composite(base, dark, inside)
    for i, poly in enumerate(polygons):
        colour = _rgb(colours[i % len(colours)])
        points = [tuple(p) for p in np.asarray(poly, dtype=float).tolist()]
        layer = Image.new("L", base.size, 0)
        ImageDraw.Draw(layer).polygon(points, fill=int(255 * fill))
        out = Image.composite(Image.new("RGB", base.size, colour), out, layer)
        # A dark line under the coloured one keeps the outline visible on light and dark images.
        ImageDraw.Draw(out).line(points + points[:1], fill=(0, 0, 0), width=width + 2, joint="curve")
        ImageDraw.Draw(out).line(points + points[:1], fill=colour, width=width, joint="curve")
    return out


def mask_image(mask: np.ndarray) -> Image.Image:
    """A binary mask ``(H, W)`` as an 8-bit PNG-ready image (255 inside)."""
    return Image.fromarray((np.asarray(mask) > 0).astype(np.uint8) * 255, mode="L")
