"""The explanation: contours, masks, scores and the settings that made them.

A :class:`ContourResult` holds one region per (image, area) and the numbers derived from it. Its
record, exports and files live in their own modules (:mod:`~extremal_contours.record`,
:mod:`~extremal_contours.export`, :mod:`~extremal_contours.folders`); the thin methods here
(``record``, ``geojson``, ``svg_path``, ``save``, ``load``) and the notebook display (``_repr_html_``,
from :mod:`~extremal_contours.notebook`) import them only when called, so a result can be built and
read without the drawing and file code.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from .scoring import Fidelity

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["Alternatives", "ContourParts", "ContourResult", "display_images"]


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

    @property
    def slots(self) -> int:
        """``M``: contours each (image, area) has room for."""
        return int(self.centre.shape[2])

    def take(self, index: slice | Tensor) -> ContourParts:
        """The parts of some images."""
        return ContourParts(*(getattr(self, f.name)[index] for f in fields(self)))

    def outlines(self, image: int, area: int) -> list[np.ndarray]:
        """The polygons ``(P, 2)`` in use for one (image, area)."""
        return [self.polygons[image, area, i].numpy() for i in range(int(self.count[image, area]))]

    def padded(self, slots: int) -> ContourParts:
        """The same parts with room for ``slots`` contours (the new slots unused, all zeros)."""
        if slots < self.slots:
            raise ValueError(f"cannot pad {self.slots} contour slots down to {slots}")

        def pad(t: Tensor) -> Tensor:
            shape = list(t.shape)
            shape[2] = slots - shape[2]
            return torch.cat([t, t.new_zeros(shape)], 2)

        return ContourParts(pad(self.centre), pad(self.coeffs), pad(self.scale), pad(self.polygons), self.count)

    @classmethod
    def concat(cls, items: Sequence[ContourParts]) -> ContourParts:
        """Parts of several results stacked along the images, padded to the largest ``M``."""
        if not items:
            raise ValueError("no parts to concatenate")
        slots = max(p.slots for p in items)
        padded = [p.padded(slots) for p in items]
        return cls(*(torch.cat([getattr(p, f.name) for p in padded]) for f in fields(cls)))


@dataclass(frozen=True)
class Alternatives:
    """Other regions the search found for each (image, area), best first: each overlaps the answer
    and every better alternative by an IoU below 0.3 (see :mod:`extremal_contours.explainer.alternatives`).
    Slots past ``count`` are unused (NaN scores).

    Attributes:
        centre: ``(N, A, k, 2)``; coeffs: ``(N, A, k, K, 2)``; scale: ``(N, A, k)``; polygons:
            ``(N, A, k, P, 2)`` in pixels (one contour each).
        visible_area: ``(N, A, k)``.
        preserve_ratio: ``(N, A, k)`` as the answer's (:attr:`ContourResult.preserve_ratio`).
        iou: ``(N, A, k)`` overlap with the answer.
        count: ``(N, A)`` alternatives found.
    """

    centre: Tensor
    coeffs: Tensor
    scale: Tensor
    polygons: Tensor
    visible_area: Tensor
    preserve_ratio: Tensor
    iou: Tensor
    count: Tensor

    def take(self, index: slice | Tensor) -> Alternatives:
        """The alternatives of some images."""
        return Alternatives(*(getattr(self, f.name)[index] for f in fields(self)))

    def outlines(self, image: int, area: int) -> list[np.ndarray]:
        """The polygons ``(P, 2)`` of one (image, area)'s alternatives, best first."""
        return [self.polygons[image, area, i].numpy() for i in range(int(self.count[image, area]))]


#: Fields that hold one entry per (image, area), the area along dimension 1.
_PER_AREA = ("centre", "coeffs", "scale", "masks", "soft_masks", "polygons", "visible_area", "preserve_score",
             "delete_score", "preserve_probability", "delete_probability", "history")  # fmt: skip

#: Fields that hold one entry per image as a tuple (the tensors hold theirs along dimension 0).
_PER_IMAGE_TUPLES = ("class_names", "names")


@dataclass(frozen=True)
class ContourResult(Fidelity):
    """One region per (image, area) and everything needed to check or redraw it.

    Shapes use ``N`` images, ``A`` areas, ``K`` harmonics, ``P`` polygon points. ``preserve_ratio``
    and ``delete_drop`` come from :class:`~extremal_contours.scoring.Fidelity`.

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
        alternatives: other distinct regions the search found (:class:`Alternatives`), or ``None``
            (several contours per region, nested sweeps).
        flags: warnings per (image, area), each ``(N, A)`` bool, by name (see
            :mod:`extremal_contours.flags`); :meth:`flags_of` lists those raised.
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
    alternatives: Alternatives | None = None
    flags: dict[str, Tensor] = field(default_factory=dict)

    # -- derived ----------------------------------------------------------------------------------

    @property
    def num_images(self) -> int:
        return int(self.centre.shape[0])

    def select(self, index: int) -> ContourResult:
        """The result of image ``index`` alone (``N = 1``)."""
        if not -self.num_images <= index < self.num_images:
            raise IndexError(f"image {index} out of range for {self.num_images} images")
        sl = slice(index, index + 1 if index != -1 else None)
        changes: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Tensor):
                changes[f.name] = value[sl]
            elif f.name in _PER_IMAGE_TUPLES and value is not None:
                changes[f.name] = (value[index],)
            elif f.name in ("parts", "alternatives") and value is not None:
                changes[f.name] = value.take(sl)
            elif f.name == "flags":
                changes[f.name] = {k: v[sl] for k, v in value.items()}
        return replace(self, **changes)

    def __getitem__(self, index: int) -> ContourResult:
        return self.select(index)

    def take_areas(self, indices: Sequence[int]) -> ContourResult:
        """The result at some of its areas only (in the order given)."""
        index = torch.as_tensor(list(indices), dtype=torch.long)
        if index.numel() == 0 or int(index.min()) < -len(self.areas) or int(index.max()) >= len(self.areas):
            raise IndexError(f"areas {list(indices)} out of range for {len(self.areas)} areas")
        changes: dict[str, Any] = {name: getattr(self, name)[:, index] for name in _PER_AREA if getattr(self, name) is not None}
        changes["areas"] = tuple(self.areas[int(i)] for i in index)
        changes["flags"] = {k: v[:, index] for k, v in self.flags.items()}
        if self.parts is not None:
            changes["parts"] = ContourParts(*(getattr(self.parts, f.name)[:, index] for f in fields(ContourParts)))
        if self.alternatives is not None:
            changes["alternatives"] = Alternatives(*(getattr(self.alternatives, f.name)[:, index] for f in fields(Alternatives)))
        return replace(self, **changes)

    @classmethod
    def concat(cls, results: Sequence[ContourResult]) -> ContourResult:
        """Results of the same areas and settings stacked along the images; the run-wide fields
        (areas, settings, cost, ...) are the first one's."""
        if not results:
            raise ValueError("no results to concatenate")
        first = results[0]
        changes: dict[str, Any] = {}
        for f in fields(first):
            values = [getattr(r, f.name) for r in results]
            if f.name == "parts":
                if any(v is not None for v in values):
                    changes[f.name] = ContourParts.concat([r.all_parts() for r in results])
            elif f.name == "alternatives":
                changes[f.name] = _concat_alternatives(values)
            elif f.name == "flags":
                names = set.intersection(*(set(v) for v in values))
                changes[f.name] = {k: torch.cat([v[k] for v in values]) for k in sorted(names)}
            elif f.name in _PER_IMAGE_TUPLES:
                changes[f.name] = tuple(v[0] for v in values) if all(v is not None for v in values) else None
            elif isinstance(values[0], Tensor) or any(isinstance(v, Tensor) for v in values):
                if any(v is None for v in values):
                    raise ValueError(f"cannot concatenate results where some have {f.name} and others not")
                changes[f.name] = torch.cat(values)
        return replace(first, **changes)

    def all_parts(self) -> ContourParts:
        """Every contour of every region: :attr:`parts`, or the one-contour regions as parts (``M = 1``)."""
        if self.parts is not None:
            return self.parts
        return ContourParts(
            centre=self.centre[:, :, None],
            coeffs=self.coeffs[:, :, None],
            scale=self.scale[:, :, None],
            polygons=self.polygons[:, :, None],
            count=torch.ones(self.scale.shape, dtype=torch.long),
        )

    def label(self, image: int = 0) -> str:
        """What was explained for one image: the class's name, else ``class N``, else the score's name."""
        if self.class_names:
            return self.class_names[image]
        return f"class {int(self.classes[image])}" if self.classes is not None else self.score

    def flags_of(self, image: int = 0, area: int = 0) -> list[str]:
        """The names of the flags raised for one (image, area) (see :mod:`extremal_contours.flags`)."""
        from .flags import describe_flags

        return describe_flags(self.flags, image, area)

    @property
    def verdict(self) -> list[list[str | None]]:
        """Per (image, area): ``"unique"`` (no other region found keeps nearly as much), ``"ambiguous"``,
        or ``None`` where alternatives were not looked for."""
        flag = self.flags.get("ambiguous")
        rows, cols = self.scale.shape
        if flag is None:
            return [[None] * cols for _ in range(rows)]
        return [["ambiguous" if bool(flag[i, j]) else "unique" for j in range(cols)] for i in range(rows)]

    def polygon(self, image: int = 0, area: int = 0) -> np.ndarray:
        """The boundary ``(P, 2)`` in pixels of one contour (the largest, for several)."""
        return self.polygons[image, area].numpy()

    def outlines(self, image: int = 0, area: int = 0) -> list[np.ndarray]:
        """Every boundary ``(P, 2)`` in pixels of one region: one per contour (they may overlap)."""
        if self.parts is not None:
            return self.parts.outlines(image, area)
        return [self.polygon(image, area)]

    # -- display in notebooks (see notebook.py) ---------------------------------------------------

    def _repr_html_(self) -> str:
        """Jupyter shows this instead of the dataclass: small overlays per (image, area) and a table
        of the numbers (see :func:`extremal_contours.notebook.result_html`)."""
        from .notebook import result_html

        return result_html(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """IPython's plain-text output (also stored in a notebook next to the HTML): a few lines
        of numbers, not every tensor."""
        from .notebook import result_text

        printer.text("ContourResult(...)" if cycle else result_text(self))

    # -- record, exports and files (see record.py, export.py) ------------------------------------

    def record(self, image: int = 0) -> dict[str, Any]:
        """The JSON record of one image: everything but the pixels."""
        from .record import to_record

        return to_record(self, image)

    def geojson(self, image: int = 0, area: int | None = None) -> dict[str, Any]:
        """A GeoJSON FeatureCollection of an image's regions (see :func:`extremal_contours.export.geojson`)."""
        from .export import geojson

        return geojson(self, image, area)

    def svg_path(self, image: int = 0, area: int = 0, digits: int = 2) -> str:
        """The boundary as an SVG path ``d`` attribute (pixel coordinates), one closed sub-path per contour."""
        from .export import svg_path

        return svg_path(self, image, area, digits)

    def save(self, directory: str | os.PathLike[str], image: Image.Image | Sequence[Image.Image] | None = None) -> Path:
        """Write the explanation to ``directory`` atomically and return its path.

        With one image the files go into ``directory`` itself; with several, into one sub-folder per
        image (its name, else its index). ``image`` (one PIL image per input, same aspect ratio as
        the model input) draws the overlay on the original picture instead of the model's input.

        Files per image: ``explanation.json``, ``input.png``, and per area ``overlay_areaA.png``,
        ``mask_areaA.png``, plus ``contours.geojson`` with all areas.
        """
        from .export import save

        return save(self, directory, image)

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> ContourResult:
        """Read a saved explanation (one image, or a folder of them) back; masks are redrawn."""
        from .record import load

        return load(directory)


def _concat_alternatives(values: Sequence[Alternatives | None]) -> Alternatives | None:
    """Alternatives of several results stacked along the images (``None`` unless all have them with
    the same room)."""
    if any(v is None for v in values):
        return None
    items = [v for v in values if v is not None]
    if len({v.centre.shape[2] for v in items}) > 1:
        return None
    return Alternatives(*(torch.cat([getattr(v, f.name) for v in items]) for f in fields(Alternatives)))
