"""The JSON record of one image's explanation: the contours' parameters and polygons, the scores, the
settings and the library versions; everything but the pixels, which are redrawn from it.

Records are strict JSON (NaN and infinities written as ``null``, read back as NaN), so every JSON
reader takes them. A record that cannot be read is refused in one line naming its file.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from . import contour as C
from ._errors import first_line
from .result import Alternatives, ContourParts, ContourResult

__all__ = ["COORDINATES", "FORMAT", "MAX_RECORD_SIDE", "RECORD_FILE", "from_record", "json_text", "load", "read_record", "to_record"]

FORMAT = "extremal-contours/1"
COORDINATES = (
    "centre and scale in normalised image coordinates: origin at the image centre, x right, y down, "
    "unit sqrt(height*width) px; r(theta) = scale * exp(sum_k a_k cos(k theta) + b_k sin(k theta)), "
    "theta from +x towards +y; polygons in pixels, origin at the top-left corner of the image"
)
#: The record's file name in a saved folder.
RECORD_FILE = "explanation.json"
#: Largest image side a record may claim (a corrupt size would otherwise allocate terabytes).
MAX_RECORD_SIDE = 16384


def json_text(data: Any, indent: int | None = None) -> str:
    """Strict JSON: NaN and infinities (a score that underflowed, say) are written as ``null``, which
    every JSON and GeoJSON reader accepts."""

    def clean(value: Any) -> Any:
        if isinstance(value, float):
            return value if math.isfinite(value) else None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(data), indent=indent, allow_nan=False)


def _number(value: Any) -> float:
    """A number of a record; ``null`` (a non-finite value when saved) is NaN."""
    return math.nan if value is None else float(value)


# -- writing ---------------------------------------------------------------------------------------


def to_record(result: ContourResult, image: int = 0) -> dict[str, Any]:
    """The JSON record of image ``image`` of ``result``."""
    h, w = result.image_size
    target: dict[str, Any] = {"score": result.score}
    if result.classes is not None:
        target["class"] = int(result.classes[image])
    if result.class_names is not None:
        target["name"] = result.class_names[image]
    clean: dict[str, Any] = {"score": float(result.clean_score[image])}
    if result.clean_probability is not None:
        clean["probability"] = float(result.clean_probability[image])
    return {
        "format": FORMAT,
        "image": {"height": h, "width": w, "name": result.names[image] if result.names else None},
        "coordinates": COORDINATES,
        "variant": result.variant,
        "edge_px": result.edge,
        "target": target,
        "clean": clean,
        "contours": [_contour_entry(result, image, j) for j in range(len(result.areas))],
        "settings": result.settings,
        "cost": {k: v for k, v in result.cost.items() if not k.endswith("_batches")},
        "seed": result.seed,
        "versions": result.versions,
        "meta": result.meta,
    }


def _contour_entry(result: ContourResult, image: int, j: int) -> dict[str, Any]:
    """The record of one (image, area) region."""
    h, w = result.image_size
    centre = result.centre[image, j]
    entry: dict[str, Any] = {
        "area": result.areas[j],
        "centre": centre.tolist(),
        "centre_px": C.to_pixels(centre, h, w).tolist(),
        "harmonics": result.coeffs[image, j].tolist(),
        "scale": float(result.scale[image, j]),
        "visible_area": float(result.visible_area[image, j]),
        "polygon_px": result.polygons[image, j].tolist(),
        "preserve": {"score": float(result.preserve_score[image, j]), "ratio": float(result.preserve_ratio[image, j])},
        "delete": {"score": float(result.delete_score[image, j]), "drop": float(result.delete_drop[image, j])},
        "history": [None if math.isnan(v) else v for v in result.history[image, j].tolist()],
    }
    if result.parts is not None:
        entry["parts"] = [_part_entry(result.parts, image, j, i, h, w) for i in range(int(result.parts.count[image, j]))]
    if result.preserve_probability is not None and result.delete_probability is not None:
        entry["preserve"]["probability"] = float(result.preserve_probability[image, j])
        entry["delete"]["probability"] = float(result.delete_probability[image, j])
    if result.flags:
        entry["flags"] = result.flags_of(image, j)
        entry["checked"] = sorted(result.flags)  # the flags looked for (absent ones were not)
    verdict = result.verdict[image][j]
    if verdict is not None:
        entry["verdict"] = verdict
    if result.alternatives is not None:
        entry["alternatives"] = _alternative_entries(result.alternatives, image, j, h, w)
    return entry


def _alternative_entries(alternatives: Alternatives, image: int, j: int, h: int, w: int) -> list[dict[str, Any]]:
    """The records of one (image, area)'s alternatives, best first."""
    return [
        {
            "centre": alternatives.centre[image, j, i].tolist(),
            "centre_px": C.to_pixels(alternatives.centre[image, j, i], h, w).tolist(),
            "harmonics": alternatives.coeffs[image, j, i].tolist(),
            "scale": float(alternatives.scale[image, j, i]),
            "visible_area": float(alternatives.visible_area[image, j, i]),
            "preserve": {"ratio": float(alternatives.preserve_ratio[image, j, i])},
            "iou_with_answer": float(alternatives.iou[image, j, i]),
            "polygon_px": alternatives.polygons[image, j, i].tolist(),
        }
        for i in range(int(alternatives.count[image, j]))
    ]


def _part_entry(parts: ContourParts, image: int, j: int, i: int, h: int, w: int) -> dict[str, Any]:
    """The record of one contour of a multi-contour region; its ``visible_area`` is its own (the
    contours may overlap)."""
    centre, coeffs, scale = parts.centre[image, j, i], parts.coeffs[image, j, i], parts.scale[image, j, i]
    own = C.visible_area(centre[None], coeffs[None], scale[None], C.image_extent(h, w))[0]
    return {
        "centre": centre.tolist(),
        "centre_px": C.to_pixels(centre, h, w).tolist(),
        "harmonics": coeffs.tolist(),
        "scale": float(scale),
        "visible_area": float(own),
        "polygon_px": parts.polygons[image, j, i].tolist(),
    }


# -- reading ---------------------------------------------------------------------------------------


class _RecordError(ValueError):
    """A record that parses but does not describe an explanation."""


def load(directory: str | os.PathLike[str]) -> ContourResult:
    """The explanation saved in ``directory``: its own record, else every record in its sub-folders
    (hidden ones left out), stacked in path order."""
    root = Path(directory)
    if (root / RECORD_FILE).is_file():
        paths = [root / RECORD_FILE]
    else:  # a folder of results, as save() or the command line (sub-folders mirrored) lays them out
        paths = sorted(p for p in root.rglob(RECORD_FILE) if not any(q.startswith(".") for q in p.relative_to(root).parts))
    if not paths:
        raise FileNotFoundError(f"no {RECORD_FILE} in {root} or its sub-folders")
    results = [read_record(p) for p in paths]
    if len(results) == 1:
        return results[0]
    shapes = {(r.image_size, r.areas, r.coeffs.shape, r.history.shape, r.polygons.shape) for r in results}
    if len(shapes) > 1:
        raise ValueError(
            f"the explanations in {root} differ in image size, areas or settings (harmonics, steps); load each folder on its own"
        )
    if any(r.images is None for r in results):
        results = [replace(r, images=None) for r in results]
    try:
        return ContourResult.concat(results)
    except ValueError as exc:
        raise ValueError(f"the explanations in {root} cannot be loaded together: {exc}") from None


def read_record(path: str | os.PathLike[str]) -> ContourResult:
    """The explanation of one record file (and the ``input.png`` beside it), or a one-line error
    naming the file."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
        if not isinstance(record, dict):
            raise ValueError(f"a JSON {type(record).__name__}, not an object")
        return from_record(record, path.parent)
    except _RecordError as exc:
        raise ValueError(f"{path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); the file is damaged") from None
    except KeyError as exc:
        raise ValueError(f"{path}: damaged or incomplete record (missing {exc})") from None
    except (ValueError, TypeError, AttributeError, IndexError, RuntimeError, OSError) as exc:
        raise ValueError(f"{path}: damaged record ({first_line(exc)})") from None


def from_record(record: dict[str, Any], folder: Path | None = None) -> ContourResult:
    """The explanation (``N = 1``) a record describes, masks redrawn from its parameters; the
    picture is read from ``folder / "input.png"`` where there is one."""
    if record.get("format") != FORMAT:
        raise _RecordError(f"not an extremal-contours record (format {record.get('format')!r})")
    h, w = record["image"]["height"], record["image"]["width"]
    if not all(isinstance(v, int) and 0 < v <= MAX_RECORD_SIDE for v in (h, w)):
        raise _RecordError(f"image size {h!r} x {w!r} is not a picture size")
    contours = record["contours"]
    if not isinstance(contours, list) or not contours:
        raise _RecordError("no contours in the record")
    centre = torch.tensor([c["centre"] for c in contours], dtype=torch.float32)
    coeffs = torch.tensor([c["harmonics"] for c in contours], dtype=torch.float32).reshape(len(contours), -1, 2)
    scale = torch.tensor([c["scale"] for c in contours], dtype=torch.float32)
    edge = float(record["edge_px"])
    parts = _parts_from_record(contours, coeffs.shape[1])
    if parts is None:
        masks = C.rasterize(centre, coeffs, scale, h, w, edge=None)
        soft = C.rasterize(centre, coeffs, scale, h, w, edge=edge)
    else:
        masks, soft = _union(parts, h, w, None), _union(parts, h, w, edge)
    target, clean = record["target"], record["clean"]
    has_prob = "probability" in clean

    def per_area(read: Callable[[dict[str, Any]], Any]) -> Tensor:
        return torch.tensor([[_number(read(c)) for c in contours]])

    history = torch.tensor([[math.nan if v is None else v for v in c["history"]] for c in contours], dtype=torch.float32)
    return ContourResult(
        areas=tuple(c["area"] for c in contours),
        variant=record["variant"],
        image_size=(h, w),
        centre=centre[None],
        coeffs=coeffs[None],
        scale=scale[None],
        edge=edge,
        masks=masks[None],
        soft_masks=soft[None],
        polygons=torch.tensor([c["polygon_px"] for c in contours], dtype=torch.float32)[None],
        visible_area=per_area(lambda c: c["visible_area"]),
        preserve_score=per_area(lambda c: c["preserve"]["score"]),
        delete_score=per_area(lambda c: c["delete"]["score"]),
        clean_score=torch.tensor([_number(clean["score"])]),
        classes=torch.tensor([target["class"]]) if "class" in target else None,
        class_names=(target["name"],) if "name" in target else None,
        clean_probability=torch.tensor([_number(clean["probability"])]) if has_prob else None,
        preserve_probability=per_area(lambda c: c["preserve"]["probability"]) if has_prob else None,
        delete_probability=per_area(lambda c: c["delete"]["probability"]) if has_prob else None,
        history=history[None],
        score=target["score"],
        settings=record["settings"],
        cost=record.get("cost", {}),
        seed=record["seed"],
        versions=record["versions"],
        images=_read_picture(folder, h, w) if folder is not None else None,
        names=(record["image"]["name"],) if record["image"].get("name") else None,
        meta=record.get("meta", {}),
        parts=parts,
        alternatives=_alternatives_from_record(contours, coeffs.shape[1]),
        flags=_flags_from_record(contours),
    )


def _flags_from_record(contours: list[dict[str, Any]]) -> dict[str, Tensor]:
    """Each flag looked for, ``(1, A)`` bool, from the records' ``checked`` and ``flags``."""
    checked = set.intersection(*(set(c.get("checked", [])) for c in contours))
    return {name: torch.tensor([[name in c.get("flags", []) for c in contours]]) for name in sorted(checked)}


def _alternatives_from_record(contours: list[dict[str, Any]], harmonics: int) -> Alternatives | None:
    """The alternatives of one image's record, ``N = 1``, padded to the most found; ``None`` if the
    record has none."""
    if not any("alternatives" in c for c in contours):
        return None
    k = max(1, max(len(c.get("alternatives", [])) for c in contours))
    a = len(contours)
    nan = torch.full((1, a, k), float("nan"))
    centre, coeffs, scale = torch.zeros(1, a, k, 2), torch.zeros(1, a, k, harmonics, 2), torch.zeros(1, a, k)
    visible, ratio, iou, polygons = nan.clone(), nan.clone(), nan.clone(), None
    count = torch.zeros(1, a, dtype=torch.long)
    for j, c in enumerate(contours):
        for i, alt in enumerate(c.get("alternatives", [])):
            centre[0, j, i], scale[0, j, i] = torch.tensor(alt["centre"]), alt["scale"]
            coeffs[0, j, i] = torch.tensor(alt["harmonics"]).reshape(harmonics, 2)
            visible[0, j, i], ratio[0, j, i] = _number(alt["visible_area"]), _number(alt["preserve"]["ratio"])
            iou[0, j, i] = _number(alt["iou_with_answer"])
            poly = torch.tensor(alt["polygon_px"], dtype=torch.float32)
            if polygons is None:
                polygons = torch.zeros(1, a, k, poly.shape[0], 2)
            polygons[0, j, i] = poly
            count[0, j] = i + 1
    if polygons is None:
        polygons = torch.zeros(1, a, k, 1, 2)
    return Alternatives(centre, coeffs, scale, polygons, visible, ratio, iou, count)


def _read_picture(folder: Path, h: int, w: int) -> Tensor | None:
    """``folder / "input.png"`` as ``(1, 3, H, W)`` uint8, ``None`` if there is none."""
    path = folder / "input.png"
    if not path.is_file():
        return None
    try:
        with Image.open(path) as im:
            picture = torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1)[None]
    except (OSError, ValueError) as exc:
        raise _RecordError(f"its input.png cannot be read ({first_line(exc)})") from None
    if picture.shape[-2:] != (h, w):
        raise _RecordError(f"its input.png is {picture.shape[-1]}x{picture.shape[-2]}, the record says {w}x{h}")
    return picture


def _parts_from_record(contours: list[dict[str, Any]], harmonics: int) -> ContourParts | None:
    """The parts of one image's record, ``N = 1``, padded to the largest count; ``None`` if none."""
    if not any("parts" in c for c in contours):
        return None
    if any(not c.get("parts", [c]) for c in contours):
        raise _RecordError("a region with an empty list of parts")
    slots = max(len(c.get("parts", [c])) for c in contours)
    a = len(contours)
    centre, coeffs = torch.zeros(1, a, slots, 2), torch.zeros(1, a, slots, harmonics, 2)
    scale, count = torch.zeros(1, a, slots), torch.zeros(1, a, dtype=torch.long)
    polygons = None
    for j, c in enumerate(contours):
        for i, p in enumerate(c.get("parts", [c])):
            centre[0, j, i] = torch.tensor(p["centre"])
            coeffs[0, j, i] = torch.tensor(p["harmonics"]).reshape(harmonics, 2)
            scale[0, j, i] = p["scale"]
            poly = torch.tensor(p["polygon_px"], dtype=torch.float32)
            if polygons is None:
                polygons = torch.zeros(1, a, slots, poly.shape[0], 2)
            polygons[0, j, i] = poly
            count[0, j] = i + 1
    assert polygons is not None  # every region has a part
    return ContourParts(centre=centre, coeffs=coeffs, scale=scale, polygons=polygons, count=count)


def _union(parts: ContourParts, h: int, w: int, edge: float | None) -> Tensor:
    """The redrawn union ``(A, 1, H, W)`` of image 0's contours, per area (binary for ``edge=None``)."""
    unions = []
    for j in range(parts.centre.shape[1]):
        used = int(parts.count[0, j])
        union, _ = C.rasterize_union(parts.centre[:, j, :used], parts.coeffs[:, j, :used], parts.scale[:, j, :used], h, w, edge)
        unions.append(union[0])
    return torch.stack(unions)
