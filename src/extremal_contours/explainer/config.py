"""The contour explainer's settings: one frozen record, checked once when it is made.

Every option of :class:`~extremal_contours.explainer.ExtremalContour` lives here, with its default
and its check; ``record()`` is what every result saves. ``docs/TUNING.md`` says how the defaults
were chosen.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import Tensor

from ..modelcall import PRECISIONS
from ..perturbation import Perturbation
from ..targets import as_score, describe

__all__ = ["ContourSettings", "phases"]


def phases(iterations: int, starts: int) -> list[tuple[int, int]]:
    """Successive halving: ``(steps, live starts)`` per phase.

    The last phase (one start) gets half of the steps, the one before a quarter, and so on; the
    first phase takes what is left. Each halving keeps the starts whose binary masks score best.
    """
    keeps = [starts]
    while keeps[-1] > 1:
        keeps.append(math.ceil(keeps[-1] / 2))
    lengths = [0] * len(keeps)
    left = iterations
    for i in range(len(keeps) - 1, 0, -1):
        lengths[i] = max(1, iterations // 2 ** (len(keeps) - i))
        left -= lengths[i]
    lengths[0] = left
    if lengths[0] < 1:
        raise ValueError(f"{iterations} iterations are too few for {starts} starts; use at least {iterations - left + 1}")
    return list(zip(lengths, keeps, strict=True))


def check_starts(count: int, scan: int, name: str) -> None:
    """``count`` starts (or families) must be at least one and fit the scan's ``scan x scan`` discs."""
    if count < 1:
        raise ValueError(f"{name} must be >= 1, got {count}")
    if scan and scan * scan < count:
        raise ValueError(f"a scan grid of {scan}x{scan} cannot place {count} {name}")


@dataclass(frozen=True)
class ContourSettings:
    """How the contours are searched for.

    Attributes:
        harmonics: Fourier harmonics ``K`` of the log-radius (the contour has ``2K + 3`` numbers).
        iterations: optimisation steps.
        starts: contours optimised per (image, area); successive halving keeps the best.
        scan: side of the grid of discs scored (forward only) to place the starts; 0 places the
            starts on a fixed grid instead.
        start_jitter: the seed's random offset of each start's centre, as a fraction of the image's
            width and height (its harmonics get noise of ``start_jitter / 2k``). The default 0 makes
            the explanation deterministic: the starts come from the scan alone.
        lr: Adam learning rate of the harmonics (normalised units).
        centre_lr: Adam learning rate of the centre (``None``: ``lr``).
        lr_end: the learning rates follow a cosine from their value to ``lr_end`` times it.
        decay: harmonic ``k`` is parameterised as ``raw_k / k^decay`` (high orders move less).
        checks: extra binary-mask checks in the last phase (each a forward pass); the best binary
            mask seen at any check is the answer.
        progressive: if > 0, harmonic ``k`` is released at ``k / (K + 1)`` of this fraction of the run.
        spectral: weight of ``sum_k k^2 (a_k^2 + b_k^2)`` (smoothness).
        nesting: weight of the nesting penalty between consecutive areas of the same image (one
            contour per area; :meth:`~extremal_contours.explainer.ExtremalContour.sweep` turns it on).
        overlap: with several contours per region, weight of their pairwise overlap.
        auto_margin: ``contours="auto"`` adds a contour while the objective (relative to the clean
            score) rises by more than this.
        max_contours: most contours ``contours="auto"`` tries.
        edge: edge width in pixels at the first and the last step, annealed geometrically.
        perturbation: ``"blur"``, ``"constant"`` or ``"fade"``; ``perturbation_options`` go to
            :class:`~extremal_contours.perturbation.Perturbation`.
        score: ``"logit"``, ``"probability"``, ``"log_probability"``, ``"contrastive"``,
            ``"similarity"`` or a callable (see :mod:`extremal_contours.targets`).
        jitter: flip the input horizontally on alternate steps (Fong et al.; off by default).
        batch_size: most images per forward pass (bounds memory).
        channels_last: feed the model channels-last inputs (``None``: on the CPU only).
        precision: the model's precision while the contours are optimised (``"float32"`` or
            ``"bfloat16"``); reported scores are computed in float32 either way.
    """

    harmonics: int = 8
    iterations: int = 64
    starts: int = 4
    scan: int = 4
    start_jitter: float = 0.0
    lr: float = 0.05
    centre_lr: float | None = 0.02
    lr_end: float = 0.02
    decay: float = 1.0
    checks: int = 2
    progressive: float = 0.0
    spectral: float = 1e-3
    nesting: float = 0.0
    overlap: float = 1.0
    auto_margin: float = 0.05
    max_contours: int = 3
    edge: tuple[float, float] = (8.0, 1.0)
    perturbation: str = "blur"
    perturbation_options: Mapping[str, Any] = field(default_factory=dict)
    score: str | Callable[..., Tensor] = "logit"
    jitter: bool = False
    batch_size: int = 32
    channels_last: bool | None = None
    precision: str = "float32"

    def __post_init__(self) -> None:
        if self.harmonics < 0:
            raise ValueError(f"harmonics must be >= 0, got {self.harmonics}")
        if self.scan < 0:
            raise ValueError(f"scan must be >= 0, got {self.scan}")
        check_starts(self.starts, self.scan, "starts")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2, got {self.batch_size}")
        if len(self.edge) != 2 or min(self.edge) <= 0:
            raise ValueError(f"edge must be two positive widths in pixels (first, last), got {self.edge}")
        phases(self.iterations, self.starts)  # enough steps for the starts
        if self.start_jitter < 0:
            raise ValueError(f"start_jitter must be >= 0, got {self.start_jitter}")
        for name, value in (("lr", self.lr), ("centre_lr", self.centre_rate), ("lr_end", self.lr_end)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value}")
        if self.checks < 0:
            raise ValueError(f"checks must be >= 0, got {self.checks}")
        if not (math.isfinite(self.spectral) and self.spectral >= 0):
            raise ValueError(f"spectral must be >= 0, got {self.spectral}")
        for name in ("nesting", "overlap"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.max_contours < 1:
            raise ValueError(f"max_contours must be >= 1, got {self.max_contours}")
        Perturbation(torch.zeros(1, 1, 4, 4), self.perturbation, **dict(self.perturbation_options))
        as_score(self.score)
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        object.__setattr__(self, "centre_lr", self.centre_rate)
        object.__setattr__(self, "edge", (float(self.edge[0]), float(self.edge[1])))
        object.__setattr__(self, "perturbation_options", dict(self.perturbation_options))

    @property
    def centre_rate(self) -> float:
        """The centre's learning rate: ``centre_lr``, or ``lr`` where it is ``None``."""
        return self.lr if self.centre_lr is None else self.centre_lr

    @property
    def phases(self) -> list[tuple[int, int]]:
        """``(steps, live starts)`` of each successive-halving phase."""
        return phases(self.iterations, self.starts)

    def record(self) -> dict[str, Any]:
        """The settings as every result records them (the score by name)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["score"] = describe(self.score)
        values["edge"] = list(self.edge)
        values["perturbation_options"] = dict(self.perturbation_options)
        order = ["harmonics", "iterations", "starts", "scan", "start_jitter"]
        head = {"method": "extremal_contour", **{k: values.pop(k) for k in order}, "phases": [list(p) for p in self.phases]}
        return head | values
