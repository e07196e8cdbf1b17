"""What one call of the explainer optimises: the game on perturbed images, and the best answer so far.

A :class:`Problem` holds everything fixed during a call (the images, the model, the perturbation,
the target and the game) and plays the game for a batch of masks; :class:`Rows` says which image,
area and region each row of a batch belongs to; :class:`Best` keeps, per (image, area), the best
binary region seen.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..modelcall import ModelRunner
from ..perturbation import Perturbation
from ..targets import ScoreFn
from .multicontour import draw_regions

__all__ = ["Best", "Candidates", "Problem", "Rows", "finite"]


def finite(values: Tensor) -> Tensor:
    """``values`` (objectives on perturbed images), or a clear error if the model gave NaN or inf."""
    if not bool(torch.isfinite(values).all()):
        raise ValueError(
            "the model's score is NaN or infinite on a perturbed image (the clean images were fine); "
            "check the model for numerical problems (e.g. half precision) or the learning rates"
        )
    return values


@dataclass
class Rows:
    """The live rows of a batch: one region each, for one (image, area) group."""

    image: Tensor  # (R,) image index
    group: Tensor  # (R,) image * A + area index
    area: Tensor  # (R,) target area
    flip: Tensor  # (R,) jitter phase, 0 or 1

    def take(self, keep: Tensor | slice) -> Rows:
        return Rows(self.image[keep], self.group[keep], self.area[keep], self.flip[keep])

    def __len__(self) -> int:
        return int(self.image.shape[0])


@dataclass
class Problem:
    """One call's fixed inputs and the game it plays.

    Attributes:
        x: ``(N, C, H, W)`` images on the model's device and dtype.
        run: the model (see :class:`~extremal_contours.modelcall.ModelRunner`).
        perturb: the perturbation of ``x``.
        clean: ``(N, D)`` the model's output on ``x``.
        classes: ``(N,)`` target classes, or ``None`` for a score without a class.
        score: the score function.
        variant: ``"preserve"``, ``"delete"`` or ``"dual"``.
        batch_size: most model inputs per call.
        cost: images run per model call, with (``step_batches``) and without (``eval_batches``) a backward pass.
    """

    x: Tensor
    run: ModelRunner
    perturb: Perturbation
    clean: Tensor
    classes: Tensor | None
    score: ScoreFn
    variant: str
    batch_size: int
    cost: dict[str, Any] = field(default_factory=lambda: {"step_batches": [], "eval_batches": []})

    def __post_init__(self) -> None:
        self.clean_score = self.score(self.clean, self.clean, self.classes).float()
        if not bool(torch.isfinite(self.clean_score).all()):  # the clean outputs were checked: the score's fault
            bad = torch.nonzero(~torch.isfinite(self.clean_score)).flatten().tolist()
            raise ValueError(f"the score is NaN or infinite on the clean image(s) {bad}; check the score function")
        self.norm = self.clean_score.abs().clamp(min=0.1)  # the loss is relative to the clean score
        _, _, height, width = self.x.shape
        from .. import contour as C

        self.extent = C.image_extent(height, width)

    @property
    def size(self) -> tuple[int, int]:
        return int(self.x.shape[-2]), int(self.x.shape[-1])

    @property
    def copies(self) -> int:
        """Model inputs per row: two for the dual game (preserved and deleted), else one."""
        return 2 if self.variant == "dual" else 1

    def chunks(self, rows: int) -> Iterator[slice]:
        """Slices of rows whose model inputs (``copies`` per row) fit in ``batch_size``."""
        size = max(1, self.batch_size // self.copies)
        for start in range(0, rows, size):
            yield slice(start, min(rows, start + size))

    def play(self, rows: Rows, masks: Tensor, flip: Tensor | None) -> tuple[Tensor, Tensor]:
        """``(objective to maximise, score of the first copy)`` for masks ``(R, 1, H, W)`` (the model
        in the optimising precision; ``flip`` mirrors the rows where it is true)."""
        masks = masks.to(self.x.dtype)
        parts = []
        if self.variant in ("preserve", "dual"):
            parts.append(self.perturb(masks, rows.image))
        if self.variant in ("delete", "dual"):
            parts.append(self.perturb(1 - masks, rows.image))
        batch = torch.cat(parts) if len(parts) > 1 else parts[0]
        if flip is not None:
            flip2 = flip.repeat(len(parts))[:, None, None, None]
            batch = torch.where(flip2, batch.flip(-1), batch)
        out = self.run.optimising(batch)
        image2 = rows.image.repeat(len(parts))
        cls = self.classes[image2] if self.classes is not None else None
        score = self.score(out, self.clean[image2], cls).float()
        r = len(rows)
        if self.variant == "preserve":
            return score, score
        if self.variant == "delete":
            return -score, score
        return score[:r] - score[r:], score[:r]

    def evaluate(self, rows: Rows, centre: Tensor, coeffs: Tensor, mix: Tensor) -> Tensor:
        """The objective of the rows' binary regions, no gradient, ``(R,)``."""
        values = []
        height, width = self.size
        with torch.no_grad():
            for sl in self.chunks(len(rows)):
                part = rows.take(sl)
                masks, _, _ = draw_regions(part.area, centre[sl], coeffs[sl], mix[sl], self.extent, height, width, None)
                value, _ = self.play(part, masks, None)
                self.cost["eval_batches"].append(value.shape[0] * self.copies)
                values.append(value)
        return finite(torch.cat(values))


@dataclass
class Candidates:
    """Every binary region a search scored, in the order scored: its group, its objective relative to
    the clean score, and its parameters ``(C, M, 2)``, ``(C, M, K, 2)``, ``(C, M)``."""

    group: Tensor
    value: Tensor
    centre: Tensor
    coeffs: Tensor
    mix: Tensor


class Best:
    """Per (image, area) group, the best binary region seen so far (its objective relative to the
    clean score, and its parameters); every region it is shown is kept as a candidate too."""

    def __init__(self, problem: Problem, groups: int, contours: int, harmonics: int) -> None:
        device = problem.x.device
        self.norm = problem.norm
        self.value = torch.full((groups,), -math.inf, device=device)
        self.centre = torch.zeros(groups, contours, 2, device=device)
        self.coeffs = torch.zeros(groups, contours, harmonics, 2, device=device)
        self.mix = torch.zeros(groups, contours, device=device)
        self._seen: list[tuple[Tensor, ...]] = []

    def candidates(self) -> Candidates:
        """Every region shown to :meth:`remember`."""
        return Candidates(*(torch.cat(parts) for parts in zip(*self._seen, strict=True)))

    def remember(self, value: Tensor, rows: Rows, centre: Tensor, coeffs: Tensor, mix: Tensor) -> None:
        """Keep, per group, the row of ``value`` (objectives of binary regions) that beats the best."""
        groups, device = self.value.shape[0], self.value.device
        value = value / self.norm[rows.image]  # relative to the clean score
        self._seen.append((rows.group, value, centre, coeffs, mix))
        better = torch.full((groups,), -math.inf, device=device).scatter_reduce(0, rows.group, value, "amax")
        improved = better > self.value
        if not improved.any():
            return
        # Row holding each group's maximum (the first if tied).
        is_max = value == better[rows.group]
        order = torch.arange(value.shape[0], device=device)
        first = torch.full((groups,), value.shape[0], device=device).scatter_reduce(
            0, rows.group, torch.where(is_max, order, value.shape[0]), "amin"
        )
        idx = first[improved]
        self.value[improved] = better[improved]
        self.centre[improved] = centre[idx]
        self.coeffs[improved] = coeffs[idx]
        self.mix[improved] = mix[idx]

    def take(self, centre: Tensor, coeffs: Tensor, mix: Tensor) -> None:
        """Make these parameters the answer (a nested sweep's best family, whatever came before)."""
        self.centre, self.coeffs, self.mix = centre, coeffs, mix
