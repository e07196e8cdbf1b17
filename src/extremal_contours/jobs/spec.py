"""What an explain job is asked to do, and the error that refuses a job's input."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ExplainJob", "JobError"]


class JobError(ValueError):
    """Input a job cannot work with (a missing store, a picture it does not hold): one line."""


@dataclass(frozen=True)
class ExplainJob:
    """An explain or sweep run over pictures.

    Attributes:
        files: the pictures, each once.
        roots: the files and folders given, in the order given: a result is named after its
            picture's path inside the outermost folder that holds it.
        out: the output folder.
        areas: the area fractions of the regions.
        target: the class explained (``None``: the predicted class).
        variant, seed, contours: the explainer's call options (``contours`` only without ``sweep``).
        weights: where the model's weights came from (an absolute path, ``"random"`` or ``None``).
        sweep: a nested sweep over the areas (with ``nesting`` and ``families``) and its figures.
        auto: with a share (e.g. 0.9), ``areas`` are tried in one run and the smallest whose region
            keeps that share of the class is picked (``--area auto``); ``None`` otherwise.
        alternatives: regions per (picture, area): the answer and up to ``alternatives - 1`` others.
        force: redo pictures already done with the same job.
        quiet: no progress bars.
    """

    files: Sequence[Path]
    roots: Sequence[Path]
    out: Path
    areas: tuple[float, ...]
    target: int | None = None
    variant: str = "preserve"
    seed: int = 0
    contours: int | str = 1
    weights: str | None = None
    sweep: bool = False
    auto: float | None = None
    alternatives: int = 1
    nesting: float = 5.0
    families: int = 2
    force: bool = False
    quiet: bool = False

    def record(self, model: str, settings: dict[str, Any]) -> dict[str, Any]:
        """What a saved result records of its job, with the ``model``'s name and the explainer's
        ``settings``: a picture (an area of it, outside sweeps) whose saved result records the same
        is done. The areas count only for a sweep (an explanation is saved per area)."""
        record: dict[str, Any] = {
            "model": model,
            "weights": self.weights,
            "target": self.target,
            "variant": self.variant,
            "seed": self.seed,
            "sweep": self.sweep,
            "contours": self.contours,
            "alternatives": self.alternatives,
            "settings": settings,
        }
        if self.sweep:
            record["areas"] = list(self.areas)
        return record
