"""A result as files others read: GeoJSON and SVG outlines, and the per-image folder (record, model
input, binary mask and overlay PNGs, GeoJSON) written atomically by :func:`save`.

GeoJSON follows Simple Features: the polygons of a MultiPolygon never overlap, so where contours of
one region overlap their union's outline is written instead (:func:`union_polygons`); contours apart
from the others stay polygons of their own.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from contourpy import FillType, contour_generator
from matplotlib.path import Path as MplPath
from PIL import Image
from torch import Tensor

from . import contour as C
from .folders import write_folder
from .inputs import area_tag
from .record import RECORD_FILE, json_text, to_record
from .result import ContourResult
from .viz import ALTERNATIVE_COLOURS, COLOUR_NAMES, PALETTE, draw_alternatives, draw_legend, draw_overlay, mask_image

if TYPE_CHECKING:
    from contourpy._contourpy import FillReturn_OuterOffset

__all__ = ["GEOJSON_FILE", "UNION_STEP", "geojson", "legend_lines", "overlay", "region_polygons", "save", "svg_path", "union_polygons", "write_image"]

#: The GeoJSON file's name in a saved folder.
GEOJSON_FILE = "contours.geojson"
#: Grid step (px) on which the outline of overlapping contours is traced: a vertex about every pixel of
#: outline, within 0.1 px of the true one where two discs cross (measured; closer elsewhere).
UNION_STEP = 1.0


# -- outlines --------------------------------------------------------------------------------------


def _closed(ring: np.ndarray) -> np.ndarray:
    return ring if len(ring) and np.array_equal(ring[0], ring[-1]) else np.concatenate([ring, ring[:1]])


def _signed_area(ring: np.ndarray) -> float:
    """Shoelace area, positive for the orientation of :func:`extremal_contours.contour.polygon` (the
    GeoJSON right-hand rule for exterior rings, reading ``(x, y)`` as plane coordinates)."""
    x, y = ring[:, 0].astype(np.float64), ring[:, 1].astype(np.float64)
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def _oriented(ring: np.ndarray, sign: float) -> np.ndarray:
    """``ring`` in the direction whose :func:`_signed_area` has the sign of ``sign``."""
    return ring if _signed_area(ring) * sign > 0 else ring[::-1]


def _overlap_groups(outlines: Sequence[np.ndarray]) -> list[list[int]]:
    """Indices of the outlines grouped by overlap (touching counts; chains join), in order."""
    paths = [MplPath(np.asarray(o, dtype=np.float64)) for o in outlines]
    group = list(range(len(paths)))

    def root(i: int) -> int:
        while group[i] != i:
            i = group[i]
        return i

    for i in range(len(paths)):
        for j in range(i + 1, len(paths)):
            if root(i) != root(j) and paths[i].intersects_path(paths[j], filled=True):
                group[root(j)] = root(i)
    members: dict[int, list[int]] = {}
    for i in range(len(paths)):
        members.setdefault(root(i), []).append(i)
    return sorted(members.values())


def union_polygons(
    centre: Tensor, coeffs: Tensor, scale: Tensor, height: int, width: int, step: float = UNION_STEP
) -> list[list[np.ndarray]]:
    """The outline of the union of contours, clipped to the image, in pixels: a list of polygons,
    each a list of closed rings ``(P, 2)`` (exterior first, right-hand rule; then its holes).

    The union is ``max_i (r_i(theta) - |p - c_i|) > 0``; that field, capped by the distance to the image
    border, is sampled every ``step`` px and its zero level traced with ``contourpy``.

    Args:
        centre: ``(M, 2)``; coeffs: ``(M, K, 2)``; scale: ``(M,)``, normalised (see :mod:`extremal_contours.contour`).
    """
    unit = math.sqrt(height * width)
    xs = np.arange(-1.0, width + 1.0 + step / 2, step)
    ys = np.arange(-1.0, height + 1.0 + step / 2, step)
    py, px = torch.meshgrid(torch.from_numpy(ys), torch.from_numpy(xs), indexing="ij")
    dx = (px.reshape(1, -1) - width / 2) / unit - centre[:, :1].double()
    dy = (py.reshape(1, -1) - height / 2) / unit - centre[:, 1:].double()
    inside = (C.radius(coeffs.double(), scale.double(), torch.atan2(dy, dx)) - torch.hypot(dx, dy)) * unit
    border = torch.minimum(torch.minimum(px, width - px), torch.minimum(py, height - py))
    field = torch.minimum(inside.amax(0).view(px.shape), border).numpy()
    traced = contour_generator(x=xs, y=ys, z=field, fill_type=FillType.OuterOffset).filled(0.0, np.inf)
    filled, offsets = cast("FillReturn_OuterOffset", traced)
    tiny = step * step / 2  # a ring under half a grid cell is a sampling artefact (a notch cut off where contours cross)
    polygons = []
    for points, cuts in zip(filled, offsets, strict=True):
        exterior, *holes = (points[a:b] for a, b in pairwise(cuts))
        if abs(_signed_area(exterior)) >= tiny:
            holes = [ring for ring in holes if abs(_signed_area(ring)) >= tiny]
            polygons.append([_oriented(exterior, 1.0), *(_oriented(ring, -1.0) for ring in holes)])
    return polygons


def region_polygons(result: ContourResult, image: int = 0, area: int = 0) -> list[list[np.ndarray]]:
    """The region of one (image, area) as polygons that do not overlap, each a list of closed rings
    ``(P, 2)`` in pixels (exterior first): a contour apart from the others is its own polygon;
    overlapping contours are traced as the outline of their union."""
    outlines = result.outlines(image, area)
    parts = result.all_parts()
    h, w = result.image_size
    polygons: list[list[np.ndarray]] = []
    for group in _overlap_groups(outlines):
        if len(group) == 1:
            polygons.append([_closed(outlines[group[0]])])
        else:
            index = torch.tensor(group)
            polygons += union_polygons(
                parts.centre[image, area, index], parts.coeffs[image, area, index], parts.scale[image, area, index], h, w
            )
    return polygons


def geojson(result: ContourResult, image: int = 0, area: int | None = None) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of an image's regions (pixel coordinates, y down): a Polygon per
    area, or a MultiPolygon for a region in several pieces (see :func:`region_polygons`)."""
    features = []
    for j in range(len(result.areas)) if area is None else [area]:
        polygons = [[ring.tolist() for ring in polygon] for polygon in region_polygons(result, image, j)]
        if len(polygons) == 1:
            geometry: dict[str, Any] = {"type": "Polygon", "coordinates": polygons[0]}
        else:
            geometry = {"type": "MultiPolygon", "coordinates": polygons}
        properties = {
            "area": result.areas[j],
            "visible_area": float(result.visible_area[image, j]),
            "preserve_ratio": float(result.preserve_ratio[image, j]),
            "coordinates": "pixels, origin top-left, y down",
        }
        features.append({"type": "Feature", "geometry": geometry, "properties": properties})
    return {"type": "FeatureCollection", "features": features}


def svg_path(result: ContourResult, image: int = 0, area: int = 0, digits: int = 2) -> str:
    """The boundary as an SVG path ``d`` attribute (pixel coordinates), one closed sub-path per
    contour (SVG's nonzero fill rule fills their union)."""
    paths = []
    for outline in result.outlines(image, area):
        head, *rest = outline.tolist()
        steps = [f"M {head[0]:.{digits}f} {head[1]:.{digits}f}"]
        steps += [f"L {x:.{digits}f} {y:.{digits}f}" for x, y in rest]
        paths.append(" ".join(steps) + " Z")
    return " ".join(paths)


# -- files -----------------------------------------------------------------------------------------


def save(result: ContourResult, directory: str | os.PathLike[str], image: Image.Image | Sequence[Image.Image] | None = None) -> Path:
    """Write ``result`` to ``directory`` atomically (see :meth:`ContourResult.save`)."""
    originals = [image] if isinstance(image, Image.Image) else list(image) if image is not None else None
    if originals is not None and len(originals) != result.num_images:
        raise ValueError(f"{len(originals)} pictures for {result.num_images} images")

    def fill(staging: Path) -> None:
        for i in range(result.num_images):
            folder = staging if result.num_images == 1 else staging / _folder_name(result, i)
            folder.mkdir(exist_ok=True)
            write_image(result, i, folder, originals[i] if originals else None)

    return write_folder(directory, fill, marker=RECORD_FILE)


def write_image(result: ContourResult, i: int, folder: Path, original: Image.Image | None = None) -> None:
    """The files of image ``i`` in ``folder``: ``input.png`` (when the result holds pictures), per
    area ``mask_areaA.png`` and ``overlay_areaA.png`` (on ``original`` if given, which must have the
    model input's aspect ratio), ``contours.geojson`` and the record."""
    h, w = result.image_size
    picture = None
    if result.images is not None:
        picture = Image.fromarray(result.images[i].permute(1, 2, 0).numpy())
        picture.save(folder / "input.png")
    canvas, factor = picture, 1.0
    if original is not None:
        ow, oh = original.size
        if abs(ow / oh - w / h) > 0.02 * (w / h):
            raise ValueError(f"the picture is {ow}x{oh}, not the aspect ratio of the {w}x{h} model input")
        canvas, factor = original, ow / w
    for j, a in enumerate(result.areas):
        tag = area_tag(a)
        mask_image(result.masks[i, j, 0].numpy()).save(folder / f"mask_{tag}.png")
        if canvas is not None:
            overlay(result, i, j, canvas, factor).save(folder / f"overlay_{tag}.png")
    (folder / GEOJSON_FILE).write_text(json_text(geojson(result, i)))
    (folder / RECORD_FILE).write_text(json_text(to_record(result, i), indent=1))


def legend_lines(result: ContourResult, i: int, j: int) -> list[tuple[str | None, str]]:
    """The overlay's legend for one (image, area): the class and area, what the region keeps (each
    contour's colour named when there are several), the alternatives and the flags."""
    label = result.label(i)
    keep = float(result.preserve_ratio[i, j])
    lines: list[tuple[str | None, str]] = [(None, f"{label}, area {result.areas[j]:g}")]
    outlines = result.outlines(i, j)
    if len(outlines) == 1:
        lines.append((PALETTE[0], f"region: keeps {keep:.0%} of the class"))
    else:
        lines.append((None, f"region of {len(outlines)} contours: keeps {keep:.0%} of the class"))
        lines += [(PALETTE[k % len(PALETTE)], f"contour {k + 1} ({COLOUR_NAMES[PALETTE[k % len(PALETTE)]]})") for k in range(len(outlines))]
    if result.alternatives is not None:
        for k in range(int(result.alternatives.count[i, j])):
            colour = ALTERNATIVE_COLOURS[k % len(ALTERNATIVE_COLOURS)]
            lines.append((colour, f"alternative {k + 1} (dashed): keeps {float(result.alternatives.preserve_ratio[i, j, k]):.0%}"))
    flags = [name.replace("_", " ") for name in result.flags_of(i, j)]
    if flags:
        lines.append((None, "! " + ", ".join(flags)))
    return lines


def overlay(result: ContourResult, i: int, j: int, canvas: Image.Image, factor: float = 1.0) -> Image.Image:
    """One (image, area)'s overlay on ``canvas`` (the model input, or the original picture ``factor``
    times its size): the region filled and outlined, the rest dimmed, alternatives dashed, a legend."""
    outlines = [p * factor for p in result.outlines(i, j)]
    picture = draw_overlay(canvas, outlines)
    if result.alternatives is not None and int(result.alternatives.count[i, j]):
        picture = draw_alternatives(picture, [p * factor for p in result.alternatives.outlines(i, j)])
    return draw_legend(picture, legend_lines(result, i, j), avoid=outlines)


def _folder_name(result: ContourResult, i: int) -> str:
    """Image ``i``'s sub-folder: its name's safe stem where that is unique, else its index."""
    if result.names:
        stem = Path(result.names[i]).stem
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in stem)
        if safe and safe not in {Path(n).stem for j, n in enumerate(result.names) if j != i}:
            return safe
    return f"{i:04d}"
