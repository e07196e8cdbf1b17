"""How the report shows pictures: small embedded thumbnails, relative links to the folder's own
files, and outlines as SVG paths drawn over a picture by the page."""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

import numpy as np
from PIL import Image, ImageOps

from ..viz import draw_overlay

__all__ = ["OUTLINE_POINTS", "THUMB_SIDE", "drawn_thumbnail", "link", "open_small", "outline_path", "thumbnail", "thumbnail_of_file"]

#: Longest side of an embedded thumbnail, in pixels.
THUMB_SIDE = 128
#: Most points of an outline drawn by the page (a contour's 256-point polygon, thinned).
OUTLINE_POINTS = 64


def link(path: Path, root: Path) -> str:
    """``path`` as a link relative to ``root`` (where the page lies), each part URL-quoted."""
    relative = os.path.relpath(path, root)
    return "/".join(quote(part, safe="") for part in Path(relative).parts)


def thumbnail(picture: Image.Image, side: int = THUMB_SIDE) -> str:
    """A JPEG data URI of ``picture`` at most ``side`` pixels a side (a few kB)."""
    small = picture.convert("RGB")
    small.thumbnail((side, side), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def open_small(path: Path, size: tuple[int, int]) -> Image.Image | None:
    """The picture at ``path`` resized to ``size`` (JPEGs decoded at a reduced size), upright as
    EXIF says; ``None`` when it cannot be read."""
    try:
        with Image.open(path) as im:
            im.draft("RGB", (size[0] * 2, size[1] * 2))
            return ImageOps.exif_transpose(im).convert("RGB").resize(size, Image.Resampling.BILINEAR)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def thumbnail_of_file(path: Path) -> str | None:
    """A thumbnail of the picture file ``path``; ``None`` when it cannot be read."""
    try:
        with Image.open(path) as im:
            im.draft("RGB", (THUMB_SIDE * 2, THUMB_SIDE * 2))
            return thumbnail(im)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def drawn_thumbnail(picture: Image.Image | None, size: tuple[int, int], polygons: Sequence[np.ndarray]) -> str:
    """A thumbnail of ``polygons`` (in the pixels of a ``size`` = (width, height) picture) drawn on
    ``picture`` (grey where there is none)."""
    width, height = size
    factor = min(1.0, THUMB_SIDE / max(width, height))
    small = (max(1, round(width * factor)), max(1, round(height * factor)))
    canvas = picture.resize(small, Image.Resampling.BILINEAR) if picture is not None else Image.new("RGB", small, (200, 200, 200))
    scaled = [np.asarray(p, dtype=float) * (small[0] / width, small[1] / height) for p in polygons]
    return thumbnail(draw_overlay(canvas, scaled, width=2))


def outline_path(polygon: Sequence[Sequence[float]], points: int = OUTLINE_POINTS) -> str:
    """An SVG path of a closed polygon ``(P, 2)`` in pixels, thinned to at most ``points`` points."""
    array = np.asarray(polygon, dtype=float).reshape(-1, 2)
    if len(array) == 0 or not np.isfinite(array).all():
        return ""
    step = max(1, -(-len(array) // points))
    kept = array[::step]
    head, *rest = kept.tolist()
    return f"M{head[0]:.1f} {head[1]:.1f}" + "".join(f"L{x:.1f} {y:.1f}" for x, y in rest) + "Z"
