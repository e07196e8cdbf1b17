"""A result as files others read: GeoJSON and SVG outlines, and the per-image folder (record, model
input, binary mask and overlay PNGs, GeoJSON) written atomically by :func:`save`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from .folders import write_folder
from .inputs import area_tag
from .record import RECORD_FILE, json_text, to_record
from .result import ContourResult
from .viz import draw_overlay, mask_image

__all__ = ["GEOJSON_FILE", "geojson", "save", "svg_path", "write_image"]

#: The GeoJSON file's name in a saved folder.
GEOJSON_FILE = "contours.geojson"


# -- outlines --------------------------------------------------------------------------------------


def geojson(result: ContourResult, image: int = 0, area: int | None = None) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of an image's regions (pixel coordinates, y down): a Polygon per
    area, or a MultiPolygon for a region of several contours."""
    features = []
    for j in range(len(result.areas)) if area is None else [area]:
        polygons = []
        for outline in result.outlines(image, j):
            ring = outline.tolist()
            polygons.append([ring + ring[:1]])
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
    """The boundary as an SVG path ``d`` attribute (pixel coordinates), one closed sub-path per contour."""
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
            draw_overlay(canvas, [p * factor for p in result.outlines(i, j)]).save(folder / f"overlay_{tag}.png")
    (folder / GEOJSON_FILE).write_text(json_text(geojson(result, i)))
    (folder / RECORD_FILE).write_text(json_text(to_record(result, i), indent=1))


def _folder_name(result: ContourResult, i: int) -> str:
    """Image ``i``'s sub-folder: its name's safe stem where that is unique, else its index."""
    if result.names:
        stem = Path(result.names[i]).stem
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in stem)
        if safe and safe not in {Path(n).stem for j, n in enumerate(result.names) if j != i}:
            return safe
    return f"{i:04d}"
