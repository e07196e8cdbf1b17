"""The explanation: contours, masks, scores and the settings that made them.

A :class:`ContourResult` holds one contour per (image, area). ``save(dir)`` writes, per image, a
JSON record (the contour's parameters, its polygon, the scores, settings and library versions),
the model's input as a PNG, and per area an overlay PNG, the binary mask as a PNG and the polygon
as GeoJSON. Everything is written into a temporary folder first and moved into place at the end,
so a failure leaves no half-written folder. ``load(dir)`` reads it back; the masks are redrawn
from the parameters alone.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from . import contour as C
from .viz import draw_overlay, mask_image

__all__ = ["COORDINATES", "FORMAT", "ContourParts", "ContourResult", "display_images"]

FORMAT = "extremal-contours/1"
COORDINATES = (
    "centre and scale in normalised image coordinates: origin at the image centre, x right, y down, "
    "unit sqrt(height*width) px; r(theta) = scale * exp(sum_k a_k cos(k theta) + b_k sin(k theta)), "
    "theta from +x towards +y; polygons in pixels, origin at the top-left corner of the image"
)


def display_images(x: Tensor, mean: Sequence[float] | None, std: Sequence[float] | None) -> Tensor:
    """Model inputs ``(N, C, H, W)`` as displayable ``uint8`` RGB ``(N, 3, H, W)``.

    With the model's normalisation the inputs are mapped back to ``[0, 1]``; without it each image
    is stretched to its own range.
    """
    x = x.detach().float()
    if mean is not None and std is not None:
        m = torch.as_tensor(mean, dtype=x.dtype).view(1, -1, 1, 1)
        s = torch.as_tensor(std, dtype=x.dtype).view(1, -1, 1, 1)
        x = x * s + m
    else:
        lo = x.amin((1, 2, 3), keepdim=True)
        hi = x.amax((1, 2, 3), keepdim=True)
        x = (x - lo) / (hi - lo).clamp(min=1e-8)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    elif x.shape[1] != 3:
        x = x[:, :3] if x.shape[1] > 3 else x.mean(1, keepdim=True).expand(-1, 3, -1, -1)
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


# Explainer settings added after results were first saved, each with the value those results ran with.
# A result saved without one ran with that value, so settings are compared with it left out there.
SETTINGS_ADDED: dict[str, Any] = {"precision": "float32"}


def comparable_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` without the added settings at their old values (see ``SETTINGS_ADDED``): the
    form in which settings are compared and hashed, so that a result saved by an earlier version
    with the same behaviour still counts as done."""
    return {k: v for k, v in settings.items() if k not in SETTINGS_ADDED or SETTINGS_ADDED[k] != v}


def _area_tag(area: float) -> str:
    return f"area{area:.4g}"


def _json_text(data: Any, indent: int | None = None) -> str:
    """Strict JSON: NaN and infinities (a score that underflowed, say) are written as ``null``, which
    every JSON and GeoJSON reader accepts; :func:`_number` reads them back as NaN."""

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


def _staging_folder(target: Path) -> Path:
    """A new hidden folder beside ``target`` (made with ``os.mkdir``, so the process's umask applies,
    unlike ``tempfile.mkdtemp``'s private 0700)."""
    import secrets

    while True:
        staging = target.with_name(f".{target.name}.{secrets.token_hex(4)}")
        try:
            staging.mkdir()
            return staging
        except FileExistsError:
            continue


def _replaceable(folder: Path) -> bool:
    """``folder`` may be replaced by a save: it is empty or holds a saved explanation (one image's,
    or one sub-folder per image)."""
    if (folder / "explanation.json").is_file():
        return True
    entries = list(folder.iterdir())
    return all(e.is_dir() and (e / "explanation.json").is_file() for e in entries)


@dataclass(frozen=True)
class ContourParts:
    """The separate contours of multi-contour explanations: up to ``M`` per (image, area), the
    region being their union. Slots past ``count`` are unused (scale 0).

    Attributes:
        centre: ``(N, A, M, 2)``; coeffs: ``(N, A, M, K, 2)``; scale: ``(N, A, M)``;
        polygons: ``(N, A, M, P, 2)`` in pixels; count: ``(N, A)`` contours in use.
    """

    centre: Tensor
    coeffs: Tensor
    scale: Tensor
    polygons: Tensor
    count: Tensor

    def take(self, index: slice | Tensor) -> ContourParts:
        """The parts of some images."""
        return ContourParts(*(getattr(self, f.name)[index] for f in fields(self)))

    def padded(self, slots: int) -> ContourParts:
        """The same parts with unused contours (zeros) added up to ``slots`` per region."""
        return replace(
            self, centre=_pad_slots(self.centre, slots), coeffs=_pad_slots(self.coeffs, slots),
            scale=_pad_slots(self.scale, slots), polygons=_pad_slots(self.polygons, slots),
        )  # fmt: skip

    def outlines(self, image: int, area: int) -> list[np.ndarray]:
        """The polygons ``(P, 2)`` in use for one (image, area)."""
        return [self.polygons[image, area, i].numpy() for i in range(int(self.count[image, area]))]


@dataclass(frozen=True)
class ContourResult:
    """One contour per (image, area) and everything needed to check or redraw it.

    Shapes use ``N`` images, ``A`` areas, ``K`` harmonics, ``P`` polygon points.

    Attributes:
        areas: the target area fractions ``(A,)``.
        variant: ``"preserve"``, ``"delete"`` or ``"dual"``.
        image_size: ``(H, W)`` of the model input the contours live on.
        centre: ``(N, A, 2)`` centres, normalised coordinates (see :mod:`extremal_contours.contour`).
        coeffs: ``(N, A, K, 2)`` harmonics ``(a_k, b_k)``.
        scale: ``(N, A)`` scales.
        edge: edge width (px) of ``soft_masks``.
        masks: ``(N, A, 1, H, W)`` bool, the binary explanation.
        soft_masks: ``(N, A, 1, H, W)`` float, the soft mask at the final edge width.
        polygons: ``(N, A, P, 2)`` boundary of the visible region in pixels ``(x, y)``.
        visible_area: ``(N, A)`` share of the image's pixels inside the binary mask.
        preserve_score, delete_score: ``(N, A)`` score of the image with only the region kept /
            with the region perturbed (binary mask), in the score's units.
        clean_score: ``(N,)`` score of the clean image.
        classes: ``(N,)`` target classes, or ``None`` for a callable score.
        class_names: names of the target classes, when known.
        clean_probability, preserve_probability, delete_probability: the target class's softmax
            probability on the clean, preserved and deleted images (class targets only).
        history: ``(N, A, T)`` best soft objective per step.
        score: the score's name.
        settings: the explainer's settings.
        cost: steps, forward+backward and forward-only images, seconds.
        seed: the seed.
        versions: library versions.
        images: ``(N, 3, H, W)`` uint8 pictures of the inputs, or ``None``.
        names: image names, or ``None``.
        meta: free-form information about the run (the CLI records the model and the job here).
        parts: for multi-contour explanations (``contours`` > 1 or ``"auto"``), every contour of
            each region (:class:`ContourParts`); ``centre``, ``coeffs``, ``scale`` and ``polygons``
            then hold the largest one, and the masks, areas and scores are the union's. ``None`` for
            one contour per region.
    """

    areas: tuple[float, ...]
    variant: str
    image_size: tuple[int, int]
    centre: Tensor
    coeffs: Tensor
    scale: Tensor
    edge: float
    masks: Tensor
    soft_masks: Tensor
    polygons: Tensor
    visible_area: Tensor
    preserve_score: Tensor
    delete_score: Tensor
    clean_score: Tensor
    classes: Tensor | None
    class_names: tuple[str, ...] | None
    clean_probability: Tensor | None
    preserve_probability: Tensor | None
    delete_probability: Tensor | None
    history: Tensor
    score: str
    settings: dict[str, Any] = field(default_factory=dict)
    cost: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    versions: dict[str, str] = field(default_factory=dict)
    images: Tensor | None = None
    names: tuple[str, ...] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    parts: ContourParts | None = None

    # -- derived ----------------------------------------------------------------------------------

    @property
    def num_images(self) -> int:
        return int(self.centre.shape[0])

    @property
    def preserve_ratio(self) -> Tensor:
        """``(N, A)`` fidelity of keeping only the region: the class probability on the preserved
        image over the clean probability (class targets), else the score ratio."""
        if self.preserve_probability is not None and self.clean_probability is not None:
            return self.preserve_probability / self.clean_probability[:, None]
        return self.preserve_score / self.clean_score[:, None]

    @property
    def delete_drop(self) -> Tensor:
        """``(N, A)``: ``1 -`` (probability, else score, with the region perturbed) / clean."""
        if self.delete_probability is not None and self.clean_probability is not None:
            return 1 - self.delete_probability / self.clean_probability[:, None]
        return 1 - self.delete_score / self.clean_score[:, None]

    def select(self, index: int) -> ContourResult:
        """The result of image ``index`` alone (``N = 1``)."""
        if not -self.num_images <= index < self.num_images:
            raise IndexError(f"image {index} out of range for {self.num_images} images")
        sl = slice(index, index + 1 if index != -1 else None)
        changes: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Tensor) and f.name != "areas":
                changes[f.name] = value[sl]
            elif f.name in ("class_names", "names") and value is not None:
                changes[f.name] = (value[index],)
            elif f.name == "parts" and value is not None:
                changes[f.name] = value.take(sl)
        return replace(self, **changes)

    def __getitem__(self, index: int) -> ContourResult:
        return self.select(index)

    def all_parts(self) -> ContourParts:
        """Every contour of each region: ``parts``, or the one-contour regions as parts (``M = 1``)."""
        return self.parts if self.parts is not None else _single_parts(self)

    # -- export -----------------------------------------------------------------------------------

    def polygon(self, image: int = 0, area: int = 0) -> np.ndarray:
        """The boundary ``(P, 2)`` in pixels of one contour (the largest, for several)."""
        return self.polygons[image, area].numpy()

    def outlines(self, image: int = 0, area: int = 0) -> list[np.ndarray]:
        """Every boundary ``(P, 2)`` in pixels of one region: one per contour."""
        if self.parts is not None:
            return self.parts.outlines(image, area)
        return [self.polygon(image, area)]

    def geojson(self, image: int = 0, area: int | None = None) -> dict[str, Any]:
        """A GeoJSON FeatureCollection of an image's regions (pixel coordinates, y down): a
        Polygon per area, or a MultiPolygon for a region of several contours."""
        areas = range(len(self.areas)) if area is None else [area]
        features = []
        for j in areas:
            rings = []
            for outline in self.outlines(image, j):
                ring = outline.tolist()
                rings.append([ring + ring[:1]])
            geometry = {"type": "Polygon", "coordinates": rings[0]} if len(rings) == 1 else {"type": "MultiPolygon", "coordinates": rings}
            features.append(
                {
                    "type": "Feature",
                    "geometry": geometry,
                    "properties": {
                        "area": self.areas[j],
                        "visible_area": float(self.visible_area[image, j]),
                        "preserve_ratio": float(self.preserve_ratio[image, j]),
                        "coordinates": "pixels, origin top-left, y down",
                    },
                }
            )
        return {"type": "FeatureCollection", "features": features}

    def svg_path(self, image: int = 0, area: int = 0, digits: int = 2) -> str:
        """The boundary as an SVG path ``d`` attribute (pixel coordinates), one closed sub-path per contour."""
        paths = []
        for outline in self.outlines(image, area):
            head, *rest = outline.tolist()
            steps = [f"M {head[0]:.{digits}f} {head[1]:.{digits}f}"]
            steps += [f"L {x:.{digits}f} {y:.{digits}f}" for x, y in rest]
            paths.append(" ".join(steps) + " Z")
        return " ".join(paths)

    def record(self, image: int = 0) -> dict[str, Any]:
        """The JSON record of one image: everything but the pixels."""
        h, w = self.image_size
        contours = []
        for j, a in enumerate(self.areas):
            centre = self.centre[image, j]
            entry: dict[str, Any] = {
                "area": a,
                "centre": centre.tolist(),
                "centre_px": C.to_pixels(centre, h, w).tolist(),
                "harmonics": self.coeffs[image, j].tolist(),
                "scale": float(self.scale[image, j]),
                "visible_area": float(self.visible_area[image, j]),
                "polygon_px": self.polygons[image, j].tolist(),
                "preserve": {"score": float(self.preserve_score[image, j]), "ratio": float(self.preserve_ratio[image, j])},
                "delete": {"score": float(self.delete_score[image, j]), "drop": float(self.delete_drop[image, j])},
                "history": [None if math.isnan(v) else v for v in self.history[image, j].tolist()],
            }
            if self.parts is not None:
                entry["parts"] = [
                    {
                        "centre": self.parts.centre[image, j, i].tolist(),
                        "centre_px": C.to_pixels(self.parts.centre[image, j, i], h, w).tolist(),
                        "harmonics": self.parts.coeffs[image, j, i].tolist(),
                        "scale": float(self.parts.scale[image, j, i]),
                        "visible_area": float(
                            C.visible_area(
                                self.parts.centre[image, j, i][None], self.parts.coeffs[image, j, i][None],
                                self.parts.scale[image, j, i][None], C.image_extent(h, w),
                            )[0]
                        ),  # of this contour alone (they may overlap)
                        "polygon_px": self.parts.polygons[image, j, i].tolist(),
                    }
                    for i in range(int(self.parts.count[image, j]))
                ]
            if self.preserve_probability is not None and self.delete_probability is not None:
                entry["preserve"]["probability"] = float(self.preserve_probability[image, j])
                entry["delete"]["probability"] = float(self.delete_probability[image, j])
            contours.append(entry)
        target: dict[str, Any] = {"score": self.score}
        if self.classes is not None:
            target["class"] = int(self.classes[image])
        if self.class_names is not None:
            target["name"] = self.class_names[image]
        clean: dict[str, Any] = {"score": float(self.clean_score[image])}
        if self.clean_probability is not None:
            clean["probability"] = float(self.clean_probability[image])
        return {
            "format": FORMAT,
            "image": {"height": h, "width": w, "name": self.names[image] if self.names else None},
            "coordinates": COORDINATES,
            "variant": self.variant,
            "edge_px": self.edge,
            "target": target,
            "clean": clean,
            "contours": contours,
            "settings": self.settings,
            "cost": {k: v for k, v in self.cost.items() if not k.endswith("_batches")},
            "seed": self.seed,
            "versions": self.versions,
            "meta": self.meta,
        }

    # -- files ------------------------------------------------------------------------------------

    def save(self, directory: str | os.PathLike[str], image: Image.Image | Sequence[Image.Image] | None = None) -> Path:
        """Write the explanation to ``directory`` atomically and return its path.

        With one image the files go into ``directory`` itself; with several, into one sub-folder per
        image (its name, else its index). ``image`` (one PIL image per input, same aspect ratio as
        the model input) draws the overlay on the original picture instead of the model's input.

        Files per image: ``explanation.json``, ``input.png``, and per area ``overlay_areaA.png``,
        ``mask_areaA.png``, plus ``contours.geojson`` with all areas.
        """
        target = Path(directory)
        originals = [image] if isinstance(image, Image.Image) else list(image) if image is not None else None
        if originals is not None and len(originals) != self.num_images:
            raise ValueError(f"{len(originals)} pictures for {self.num_images} images")
        if target.exists() and not target.is_dir():
            raise ValueError(f"cannot save to {target}: it is a file, not a folder")
        if target.is_dir() and not _replaceable(target):
            raise ValueError(f"cannot save to {target}: the folder holds other files than a saved explanation")
        if target.parent.exists() and not target.parent.is_dir():
            raise ValueError(f"cannot save to {target}: {target.parent} is a file, not a folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = _staging_folder(target)
        try:
            for i in range(self.num_images):
                folder = staging if self.num_images == 1 else staging / _folder_name(self, i)
                folder.mkdir(exist_ok=True)
                self._write_image(i, folder, originals[i] if originals else None)
            _replace_dir(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return target

    def _write_image(self, i: int, folder: Path, original: Image.Image | None) -> None:
        h, w = self.image_size
        picture = None
        if self.images is not None:
            picture = Image.fromarray(self.images[i].permute(1, 2, 0).numpy())
            picture.save(folder / "input.png")
        canvas, factor = picture, 1.0
        if original is not None:
            ow, oh = original.size
            if abs(ow / oh - w / h) > 0.02 * (w / h):
                raise ValueError(f"the picture is {ow}x{oh}, not the aspect ratio of the {w}x{h} model input")
            canvas, factor = original, ow / w
        for j, a in enumerate(self.areas):
            tag = _area_tag(a)
            mask_image(self.masks[i, j, 0].numpy()).save(folder / f"mask_{tag}.png")
            if canvas is not None:
                draw_overlay(canvas, [p * factor for p in self.outlines(i, j)]).save(folder / f"overlay_{tag}.png")
        (folder / "contours.geojson").write_text(_json_text(self.geojson(i)))
        (folder / "explanation.json").write_text(_json_text(self.record(i), indent=1))

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> ContourResult:
        """Read a saved explanation (one image, or a folder of them) back; masks are redrawn."""
        root = Path(directory)
        if (root / "explanation.json").is_file():
            records = [root / "explanation.json"]
        else:  # a folder of results, as save() or the command line (sub-folders mirrored) lays them out
            records = sorted(p for p in root.rglob("explanation.json") if not any(q.startswith(".") for q in p.relative_to(root).parts))
        if not records:
            raise FileNotFoundError(f"no explanation.json in {root} or its sub-folders")
        parts = [_read_record(p) for p in records]
        if len(parts) == 1:
            return parts[0]
        shapes = {(p.image_size, p.areas, p.coeffs.shape, p.history.shape, p.polygons.shape) for p in parts}
        if len(shapes) > 1:
            raise ValueError(
                f"the explanations in {root} differ in image size, areas or settings (harmonics, steps); load each folder on its own"
            )
        if any(p.images is None for p in parts):
            parts = [replace(p, images=None) for p in parts]
        return _concat(parts)


def _folder_name(result: ContourResult, i: int) -> str:
    if result.names:
        stem = Path(result.names[i]).stem
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in stem)
        if safe and safe not in {Path(n).stem for j, n in enumerate(result.names) if j != i}:
            return safe
    return f"{i:04d}"


def _replace_dir(staging: Path, target: Path) -> None:
    """Move ``staging`` to ``target``, replacing an existing folder only once the new one is whole."""
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
        os.replace(staging, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, target)


#: Largest image side a record may claim (a corrupt size would otherwise allocate terabytes).
MAX_RECORD_SIDE = 16384


def _read_record(path: Path) -> ContourResult:
    """One saved explanation, or a one-line error naming the file."""
    try:
        record = json.loads(path.read_text())
        if not isinstance(record, dict):
            raise ValueError(f"a JSON {type(record).__name__}, not an object")
        return _from_record(record, path.parent)
    except _RecordError as exc:
        raise ValueError(f"{path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); the file is damaged") from None
    except KeyError as exc:
        raise ValueError(f"{path}: damaged or incomplete record (missing {exc})") from None
    except (ValueError, TypeError, AttributeError, IndexError, RuntimeError, OSError) as exc:
        from ._errors import first_line

        raise ValueError(f"{path}: damaged record ({first_line(exc)})") from None


class _RecordError(ValueError):
    """A record that parses but does not describe an explanation."""


def _from_record(record: dict[str, Any], folder: Path) -> ContourResult:
    if record.get("format") != FORMAT:
        raise _RecordError(f"not an extremal-contours record (format {record.get('format')!r})")
    h, w = record["image"]["height"], record["image"]["width"]
    if not all(isinstance(v, int) and 0 < v <= MAX_RECORD_SIDE for v in (h, w)):
        raise _RecordError(f"image size {h!r} x {w!r} is not a picture size")
    if not isinstance(record["contours"], list) or not record["contours"]:
        raise _RecordError("no contours in the record")
    contours = record["contours"]
    centre = torch.tensor([c["centre"] for c in contours], dtype=torch.float32)
    coeffs = torch.tensor([c["harmonics"] for c in contours], dtype=torch.float32).reshape(len(contours), -1, 2)
    scale = torch.tensor([c["scale"] for c in contours], dtype=torch.float32)
    edge = float(record["edge_px"])
    parts = _parts_from_record(contours, coeffs.shape[1], h, w)
    if parts is None:
        masks = C.rasterize(centre, coeffs, scale, h, w, edge=None)
        soft = C.rasterize(centre, coeffs, scale, h, w, edge=edge)
    else:
        masks = torch.stack([_union(parts, j, h, w, None) for j in range(len(contours))])
        soft = torch.stack([_union(parts, j, h, w, edge) for j in range(len(contours))])
    target, clean = record["target"], record["clean"]
    has_prob = "probability" in clean
    images = None
    if (folder / "input.png").is_file():
        try:
            with Image.open(folder / "input.png") as im:
                images = torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1)[None]
        except (OSError, ValueError) as exc:
            raise _RecordError(f"its input.png cannot be read ({exc})") from None
        if images.shape[-2:] != (h, w):
            raise _RecordError(f"its input.png is {images.shape[-1]}x{images.shape[-2]}, the record says {w}x{h}")
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
        visible_area=torch.tensor([[_number(c["visible_area"]) for c in contours]]),
        preserve_score=torch.tensor([[_number(c["preserve"]["score"]) for c in contours]]),
        delete_score=torch.tensor([[_number(c["delete"]["score"]) for c in contours]]),
        clean_score=torch.tensor([_number(clean["score"])]),
        classes=torch.tensor([target["class"]]) if "class" in target else None,
        class_names=(target["name"],) if "name" in target else None,
        clean_probability=torch.tensor([_number(clean["probability"])]) if has_prob else None,
        preserve_probability=torch.tensor([[_number(c["preserve"]["probability"]) for c in contours]]) if has_prob else None,
        delete_probability=torch.tensor([[_number(c["delete"]["probability"]) for c in contours]]) if has_prob else None,
        history=history[None],
        score=target["score"],
        settings=record["settings"],
        cost=record.get("cost", {}),
        seed=record["seed"],
        versions=record["versions"],
        images=images,
        names=(record["image"]["name"],) if record["image"].get("name") else None,
        meta=record.get("meta", {}),
        parts=parts,
    )


def _parts_from_record(contours: list[dict[str, Any]], harmonics: int, h: int, w: int) -> ContourParts | None:
    """The parts of one image's record, ``N = 1``, padded to the largest count; ``None`` if none."""
    if not any("parts" in c for c in contours):
        return None
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
    assert polygons is not None
    return ContourParts(centre=centre, coeffs=coeffs, scale=scale, polygons=polygons, count=count)


def _union(parts: ContourParts, area: int, h: int, w: int, edge: float | None) -> Tensor:
    """The redrawn union ``(1, H, W)`` of image 0's contours at one area."""
    used = int(parts.count[0, area])
    union, _ = C.rasterize_union(
        parts.centre[:, area, :used], parts.coeffs[:, area, :used], parts.scale[:, area, :used], h, w, edge
    )
    return union[0]


def _concat(parts: list[ContourResult]) -> ContourResult:
    first = parts[0]
    changes: dict[str, Any] = {}
    for f in fields(first):
        values = [getattr(p, f.name) for p in parts]
        if isinstance(values[0], Tensor):
            changes[f.name] = torch.cat(values)
        elif f.name in ("class_names", "names"):
            changes[f.name] = tuple(v[0] for v in values) if all(v is not None for v in values) else None
        elif f.name in ("classes", "clean_probability", "preserve_probability", "delete_probability", "images"):
            changes[f.name] = None
        elif f.name == "parts" and any(v is not None for v in values):
            changes[f.name] = _cat_parts([v if v is not None else _single_parts(p) for v, p in zip(values, parts, strict=True)])
    return replace(first, **changes)


def _single_parts(result: ContourResult) -> ContourParts:
    """One-contour regions as parts (``M = 1``)."""
    return ContourParts(
        centre=result.centre[:, :, None],
        coeffs=result.coeffs[:, :, None],
        scale=result.scale[:, :, None],
        polygons=result.polygons[:, :, None],
        count=torch.ones(result.scale.shape, dtype=torch.long),
    )


def _pad_slots(t: Tensor, slots: int) -> Tensor:
    """``(N, A, M, ...)`` padded with zeros to ``slots`` contours."""
    shape = list(t.shape)
    shape[2] = slots - shape[2]
    return torch.cat([t, t.new_zeros(shape)], 2)


def _cat_parts(items: list[ContourParts]) -> ContourParts:
    """Parts of several results stacked along the images, padded to the largest ``M``."""
    slots = max(p.centre.shape[2] for p in items)

    def pad(t: Tensor) -> Tensor:
        return _pad_slots(t, slots)

    return ContourParts(
        centre=torch.cat([pad(p.centre) for p in items]),
        coeffs=torch.cat([pad(p.coeffs) for p in items]),
        scale=torch.cat([pad(p.scale) for p in items]),
        polygons=torch.cat([pad(p.polygons) for p in items]),
        count=torch.cat([p.count for p in items]),
    )
