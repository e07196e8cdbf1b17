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
    nesting: float = 5.0
    families: int = 2
    force: bool = False
    quiet: bool = False

    def record(self, model: str, settings: dict[str, Any]) -> dict[str, Any]:
        """What a saved result records of its job, with the ``model``'s name and the explainer's
        ``settings``: a picture whose saved result records the same is done."""
        return {
            "model": model,
            "weights": self.weights,
            "target": self.target,
            "areas": list(self.areas),
            "variant": self.variant,
            "seed": self.seed,
            "sweep": self.sweep,
            "contours": self.contours,
            "settings": settings,
        }
