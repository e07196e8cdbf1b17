"""What a benchmark run is asked to do, and the options each method then runs with."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["SANITY_STEPS", "SEEDED", "SEEDED_STARTS", "BenchmarkConfig", "method_options", "seeds_of"]

#: Methods whose result depends on the seed (the others run once).
SEEDED = ("contour", "contour_map", "rise")

#: Options that make a seed really change the run, for methods that are deterministic by default.
#: EVALUATION.md: run-to-run consistency compares runs whose starts the seed moves (by up to 10% of
#: the image); a method whose seed changes nothing has no consistency to report.
SEEDED_STARTS: dict[str, dict[str, Any]] = {"contour": {"start_jitter": 0.1}, "contour_map": {"start_jitter": 0.1}}

#: Default steps of the model-parameter randomisation test: evenly spaced over the model's layers.
SANITY_STEPS = 10


@dataclass
class BenchmarkConfig:
    data: Path
    methods: Sequence[str]
    out: Path
    areas: Sequence[float] = (0.1,)
    seeds: Sequence[int] = (0,)
    limit: int | None = None
    stride: int = 1
    batch: int = 8
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    resize: str = "center"
    #: Also compute faithfulness correlation and insertion/deletion AUC (about 170 forward passes
    #: per image and method).
    faithfulness: bool = False
    #: Pixels (values, with the "quantus" protocol) per random subset of the faithfulness correlation (Quantus' default 224;
    #: ``docs/BENCHMARKS.md`` section 9g measures larger ones).
    faithfulness_subset: int = 224
    #: How the faithfulness correlation replaces a subset: ``"blur"`` (pixels, all channels, by the
    #: most blurred level of the methods' own perturbation) or ``"quantus"`` (Quantus' defaults:
    #: single values of the C x H x W input, by the image's minimum).
    faithfulness_protocol: str = "blur"
    #: Adversarial-artifact check: explain a seeded random class the model does not predict.
    random_target: bool = False
    #: Stability: explain every picture's nuisance variants too (shifted, flipped, JPEG, noise; see
    #: :mod:`extremal_contours.nuisances`) and compare with its own explanation.
    stability: bool = False
    #: Where the model's weights came from (a path, ``"random"``, or ``None`` for the model's own):
    #: recorded in ``run.json`` and checked when a folder is continued.
    weights: str | None = None
    #: Model-parameter randomisation test (:mod:`extremal_contours.sanity`): explain every picture
    #: again (first seed) on copies of the model randomised from the top layer down, cumulatively.
    sanity: bool = False
    #: Its steps: that many evenly spaced over the layers (the top layer alone first, every layer
    #: last), or every layer with ``None``; each step costs one more explanation per picture and method.
    sanity_steps: int | None = SANITY_STEPS


def seeds_of(config: BenchmarkConfig, method: str) -> Sequence[int]:
    """The seeds ``method`` runs with: every seed for a seeded method, else the first only."""
    return config.seeds if method in SEEDED else config.seeds[:1]


def method_options(config: BenchmarkConfig, log: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """Each method's options: the configured ones and, with several seeds, the options that make a
    seed move a deterministic method's starts (:data:`SEEDED_STARTS`, unless set), said in ``log``."""
    options = {m: dict(config.options.get(m, {})) for m in config.methods}
    if len(config.seeds) > 1:
        for method in config.methods:
            seeded = {k: v for k, v in SEEDED_STARTS.get(method, {}).items() if k not in options[method]}
            if seeded:
                options[method].update(seeded)
                text = ", ".join(f"{k}={v}" for k, v in seeded.items())
                log(f"{method}: {len(config.seeds)} seeds, so each seed moves the starts ({text}) and run-to-run IoU means something; one seed runs the deterministic default")
    return options
