"""Dataset readers: pictures with a class and, where known, object boxes.

Three layouts, one :class:`Sample` type:

- :class:`AnnotatedFolder`: a folder and an ``annotations.json`` list of entries
  ``{"file", "label", "label_name", "boxes": [[x1, y1, x2, y2], ...], ...}`` (the format of the annotated picture folders this project is measured on);
- :class:`ImageNetVal`: the official validation folder and ``LOC_val_solution.csv``;
- :class:`VOCDetection`: Pascal VOC ``JPEGImages/`` and ``Annotations/*.xml``.

Boxes become ground-truth masks through :func:`box_mask` and :func:`input_mask`, which applies the
same resize and crop as the picture gets on its way to the model.
"""

from __future__ import annotations

import csv
import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from ._errors import first_line
from .images import IMAGE_SUFFIXES

__all__ = ["AnnotatedFolder", "DatasetError", "ImageNetVal", "Sample", "VOCDetection", "box_mask", "input_mask", "open_dataset"]


class DatasetError(ValueError):
    """An annotation file that cannot be read, with a one-line reason naming it."""


def _label(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise DatasetError(f"{where}: label {value!r} is not a class index")
    try:
        number = float(value)
    except ValueError:
        raise DatasetError(f"{where}: label {value!r} is not a class index") from None
    if not number.is_integer():
        raise DatasetError(f"{where}: label {value!r} is not a whole number")
    return int(number)


def _boxes(value: Any, where: str) -> tuple[tuple[float, float, float, float], ...]:
    if not value:
        return ()
    try:
        boxes = tuple(tuple(float(v) for v in box) for box in value)
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: boxes must be a list of [x1, y1, x2, y2], got {value!r}"[:300]) from None
    if any(len(b) != 4 for b in boxes):
        raise DatasetError(f"{where}: boxes must be a list of [x1, y1, x2, y2], got {value!r}"[:300])
    return boxes  # type: ignore[return-value]


def _unique_names(samples: list[Sample], root: Path) -> list[Sample]:
    """Samples whose file names repeat (different folders) are named by their path under ``root``
    instead: a name is what results are keyed by."""
    count: dict[str, int] = {}
    for s in samples:
        count[s.name] = count.get(s.name, 0) + 1
    out = []
    for s in samples:
        if count[s.name] > 1:
            try:
                name = s.path.relative_to(root).as_posix()
            except ValueError:
                name = s.path.as_posix()
            s = replace(s, name=name)
        out.append(s)
    return out


@dataclass(frozen=True)
class Sample:
    """One picture: its file, class (ImageNet index, or ``None``), boxes in the file's pixels."""

    path: Path
    name: str
    label: int | None
    label_name: str | None = None
    boxes: tuple[tuple[float, float, float, float], ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


class _Dataset(Sequence[Sample]):
    samples: list[Sample]
    root: Path

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        return self.samples[index]

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    @property
    def has_boxes(self) -> bool:
        return any(s.boxes for s in self.samples)


class AnnotatedFolder(_Dataset):
    """A folder with ``annotations.json`` (a list of entries; see the module docstring)."""

    def __init__(self, root: str | os.PathLike[str], annotations: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root)
        path = Path(annotations) if annotations else self.root / "annotations.json"
        if not path.is_file():
            raise FileNotFoundError(f"no annotation file {path}")
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise DatasetError(f"{path}: not valid JSON ({first_line(exc)})") from None
        if not isinstance(entries, list):
            raise DatasetError(f"{path}: expected a list of entries, got a JSON {type(entries).__name__}")
        samples = []
        for i, entry in enumerate(entries):
            where = f"{path}: entry {i}"
            if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
                raise DatasetError(f"{where} is not an object with a 'file' name")
            samples.append(
                Sample(
                    path=self.root / entry["file"],
                    name=Path(entry["file"]).name,
                    label=_label(entry.get("label"), where),
                    label_name=entry.get("label_name"),
                    boxes=_boxes(entry.get("boxes"), where),
                    extra={k: v for k, v in entry.items() if k not in ("file", "label", "label_name", "boxes")},
                )
            )
        self.samples = _unique_names(samples, self.root)


def _imagenet_synsets() -> list[str]:
    from timm.data import ImageNetInfo

    return list(ImageNetInfo().label_names())


class ImageNetVal(_Dataset):
    """The ImageNet validation layout: pictures ``ILSVRC2012_val_*.JPEG`` (in ``root`` or below it)
    and ``LOC_val_solution.csv`` (``ImageId,PredictionString`` with ``synset x1 y1 x2 y2 ...``)."""

    def __init__(self, root: str | os.PathLike[str], solution: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root)
        csv_path = Path(solution) if solution else self.root / "LOC_val_solution.csv"
        if not csv_path.is_file():
            raise FileNotFoundError(f"no LOC_val_solution.csv at {csv_path}")
        index = {s: i for i, s in enumerate(_imagenet_synsets())}
        files = {p.stem: p for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES}
        self.samples = []
        try:
            with csv_path.open(newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                if not {"ImageId", "PredictionString"} <= set(reader.fieldnames or []):
                    raise DatasetError(f"{csv_path}: expected the columns ImageId,PredictionString, got {reader.fieldnames}")
                for line, row in enumerate(reader, start=2):
                    image_id = row["ImageId"]
                    if image_id not in files:
                        continue
                    parts = (row["PredictionString"] or "").split()
                    objects = [parts[i : i + 5] for i in range(0, len(parts), 5)]
                    if not objects or any(len(obj) != 5 for obj in objects):
                        raise DatasetError(f"{csv_path}: line {line}: PredictionString is not 'synset x1 y1 x2 y2 ...'")
                    synset = objects[0][0]
                    try:
                        boxes = tuple(tuple(float(v) for v in obj[1:]) for obj in objects if obj[0] == synset)
                    except ValueError:
                        raise DatasetError(f"{csv_path}: line {line}: a box coordinate is not a number") from None
                    if synset not in index:
                        raise DatasetError(f"{csv_path}: line {line}: {synset!r} is not an ImageNet synset")
                    self.samples.append(
                        Sample(path=files[image_id], name=files[image_id].name, label=index[synset], label_name=synset, boxes=boxes)  # type: ignore[arg-type]
                    )
        except UnicodeDecodeError:
            raise DatasetError(f"{csv_path}: not a UTF-8 text file") from None
        self.samples.sort(key=lambda s: s.name)


class VOCDetection(_Dataset):
    """Pascal VOC: ``JPEGImages/*.jpg`` and ``Annotations/*.xml``. VOC classes are not ImageNet
    classes, so ``label`` is ``None`` (explain the predicted class); ``label_name`` is the first
    object's class and ``boxes`` are that class's boxes."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        annotations = sorted((self.root / "Annotations").glob("*.xml"))
        if not annotations:
            raise FileNotFoundError(f"no Annotations/*.xml under {self.root}")
        self.samples = []
        for xml in annotations:
            try:
                tree = ET.parse(xml).getroot()
            except ET.ParseError as exc:
                raise DatasetError(f"{xml}: not valid XML ({exc})") from None
            objects = tree.findall("object")
            if not objects:
                continue
            name = objects[0].findtext("name")
            boxes = []
            for obj in objects:
                if obj.findtext("name") != name:
                    continue
                bb = obj.find("bndbox")
                if bb is None:
                    continue
                try:
                    boxes.append(tuple(float(bb.findtext(k) or 0) for k in ("xmin", "ymin", "xmax", "ymax")))
                except ValueError:
                    raise DatasetError(f"{xml}: a bndbox coordinate is not a number") from None
            filename = tree.findtext("filename") or f"{xml.stem}.jpg"
            self.samples.append(
                Sample(path=self.root / "JPEGImages" / filename, name=filename, label=None, label_name=name, boxes=tuple(boxes))  # type: ignore[arg-type]
            )


def open_dataset(root: str | os.PathLike[str]) -> _Dataset:
    """The reader that fits a folder: ``annotations.json``, ``LOC_val_solution.csv`` or VOC."""
    path = Path(root)
    if (path / "annotations.json").is_file():
        return AnnotatedFolder(path)
    if (path / "LOC_val_solution.csv").is_file():
        return ImageNetVal(path)
    if (path / "Annotations").is_dir():
        return VOCDetection(path)
    raise FileNotFoundError(f"{path}: no annotations.json, LOC_val_solution.csv or VOC Annotations/ folder")


def box_mask(boxes: Sequence[Sequence[float]], width: int, height: int) -> np.ndarray:
    """The union of boxes ``[x1, y1, x2, y2]`` (pixel coordinates, edges) as a bool mask ``(H, W)``."""
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for x1, y1, x2, y2 in boxes:
        # Pixel (i, j) is inside when its centre is: the box covers columns x1 <= j + 0.5 < x2.
        if x2 - x1 >= 1 and y2 - y1 >= 1:
            draw.rectangle([round(x1), round(y1), round(x2) - 1, round(y2) - 1], fill=255)
    return np.array(canvas) > 0


def input_mask(sample: Sample, size: tuple[int, int], resize: Any) -> np.ndarray:
    """The sample's boxes as a mask on the model input: ``resize`` is the same function that maps
    the picture to the model (e.g. ``lambda im: loaded.resize(im, "center")``), applied to the box
    mask with nearest-neighbour sampling. ``size`` is the picture's ``(width, height)``."""
    mask = Image.fromarray(box_mask(sample.boxes, *size).astype(np.uint8) * 255)
    return np.array(resize(mask)) > 127
