"""Pictures of explanations. Reads arrays and polygons; never runs a model.

Colours are from the Okabe-Ito palette (safe for the common colour-vision deficiencies).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["ALTERNATIVE_COLOURS", "COLOUR_NAMES", "PALETTE", "draw_alternatives", "draw_legend", "draw_overlay", "mask_image"]

#: Okabe-Ito colours, in the order contours are drawn.
PALETTE = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")
#: Their names, for legends.
COLOUR_NAMES = dict(zip(PALETTE, ("orange", "sky blue", "green", "yellow", "blue", "vermilion", "purple"), strict=True))
#: Colours of alternative regions (dashed outlines), apart from the answer's contours.
ALTERNATIVE_COLOURS = ("#F0E442", "#CC79A7", "#009E73")


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


def _dashed(draw: ImageDraw.ImageDraw, points: list[tuple[float, float]], colour: tuple[int, int, int], width: int) -> None:
    """A closed dashed outline (dashes about 4 line widths long)."""
    closed = np.asarray(points + points[:1], dtype=float)
    steps = np.hypot(*np.diff(closed, axis=0).T)
    along = np.concatenate([[0.0], np.cumsum(steps)])
    dash = 4.0 * width
    for start in np.arange(0.0, along[-1], 2 * dash):
        seg = (along >= start) & (along <= start + dash)
        if seg.sum() >= 2:
            draw.line([tuple(p) for p in closed[seg]], fill=colour, width=width)


def draw_alternatives(image: Image.Image, polygons: Sequence[np.ndarray], colours: Sequence[str] = ALTERNATIVE_COLOURS) -> Image.Image:
    """``image`` with each alternative region's outline dashed in its colour (no fill, no dimming)."""
    out = image.convert("RGB")
    w, h = out.size
    width = max(2, round((w * w + h * h) ** 0.5 / 200))
    draw = ImageDraw.Draw(out)
    for i, poly in enumerate(polygons):
        points = [tuple(p) for p in np.asarray(poly, dtype=float).tolist()]
        _dashed(draw, points, (0, 0, 0), width + 2)
        _dashed(draw, points, _rgb(colours[i % len(colours)]), width)
    return out


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def draw_legend(image: Image.Image, lines: Sequence[tuple[str | None, str]], avoid: Sequence[np.ndarray] = ()) -> Image.Image:
    """``image`` with a small legend box: one line per ``(colour or None, text)``, a colour swatch
    before the text. The box goes to the corner farthest from the centroid of the ``avoid`` outlines
    (the region), so it does not hide it."""
    out = image.convert("RGB")
    w, h = out.size
    size = max(10, min(w, h) // 28)
    font = _font(size)
    draw = ImageDraw.Draw(out, "RGBA")
    pad, swatch = size // 2, size
    widths = [draw.textlength(text, font=font) + (swatch + pad if colour else 0) for colour, text in lines]
    box_w, box_h = int(max(widths, default=0)) + 2 * pad, len(lines) * (size + pad // 2) + pad
    centre = np.concatenate([np.asarray(p, dtype=float) for p in avoid]).mean(0) if len(avoid) else np.array([w / 2, h / 2])
    corners = [(0, 0), (w - box_w, 0), (0, h - box_h), (w - box_w, h - box_h)]
    x0, y0 = max(corners, key=lambda c: float(np.hypot(c[0] + box_w / 2 - centre[0], c[1] + box_h / 2 - centre[1])))
    x0, y0 = max(0, x0), max(0, y0)
    draw.rectangle([x0, y0, x0 + box_w, y0 + box_h], fill=(0, 0, 0, 170))
    y = y0 + pad
    for colour, text in lines:
        x = x0 + pad
        if colour:
            draw.rectangle([x, y + 1, x + swatch - 2, y + swatch - 1], fill=_rgb(colour), outline=(255, 255, 255))
            x += swatch + pad
        draw.text((x, y), text, fill=(255, 255, 255), font=font)
        y += size + pad // 2
    return out


def mask_image(mask: np.ndarray) -> Image.Image:
    """A binary mask ``(H, W)`` as an 8-bit PNG-ready image (255 inside)."""
    return Image.fromarray((np.asarray(mask) > 0).astype(np.uint8) * 255, mode="L")
