"""Dataset readers: pictures with a class and, where known, object boxes.

Three layouts, one :class:`Sample` type:

- :class:`AnnotatedFolder`: a folder and an ``annotations.json`` list of entries
  ``{"file", "label", "label_name", "boxes": [[x1, y1, x2, y2], ...], ...}`` (the ``../shared/data`` format);
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from .images import IMAGE_SUFFIXES

__all__ = ["AnnotatedFolder", "ImageNetVal", "Sample", "VOCDetection", "box_mask", "input_mask", "open_dataset"]


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
        entries = json.loads(path.read_text())
        if not isinstance(entries, list):
            raise ValueError(f"{path}: expected a list of entries")
        self.samples = []
        for i, entry in enumerate(entries):
            if "file" not in entry:
                raise ValueError(f"{path}: entry {i} has no 'file'")
            boxes = tuple(tuple(float(v) for v in box) for box in entry.get("boxes") or [])
            self.samples.append(
                Sample(
                    path=self.root / entry["file"],
                    name=Path(entry["file"]).name,
                    label=int(entry["label"]) if entry.get("label") is not None else None,
                    label_name=entry.get("label_name"),
                    boxes=boxes,  # type: ignore[arg-type]
                    extra={k: v for k, v in entry.items() if k not in ("file", "label", "label_name", "boxes")},
                )
            )


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
        with csv_path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                image_id = row["ImageId"]
                if image_id not in files:
                    continue
                parts = row["PredictionString"].split()
                objects = [parts[i : i + 5] for i in range(0, len(parts), 5)]
                synset = objects[0][0]
                boxes = tuple(tuple(float(v) for v in obj[1:]) for obj in objects if obj[0] == synset)
                self.samples.append(
                    Sample(path=files[image_id], name=files[image_id].name, label=index.get(synset), label_name=synset, boxes=boxes)  # type: ignore[arg-type]
                )
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
            tree = ET.parse(xml).getroot()
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
                boxes.append(tuple(float(bb.findtext(k) or 0) for k in ("xmin", "ymin", "xmax", "ymax")))
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
