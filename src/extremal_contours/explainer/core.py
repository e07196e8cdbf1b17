"""The Extremal Contour explainer: a short class that wires the rooms of :mod:`extremal_contours.explainer` together.

``attribute`` checks the inputs, calls the model on the clean images, builds the
:class:`~extremal_contours.explainer.objective.Problem`, runs the
:func:`~extremal_contours.explainer.search.search` and turns its answer into a
:class:`~extremal_contours.result.ContourResult`. ``docs/METHOD.md`` describes the method.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn

from .._errors import first_line
from ..inputs import check_areas, check_images, check_variant
from ..modelcall import ModelRunner, eval_mode, model_place
from ..perturbation import Perturbation
from ..result import ContourResult
from ..sweep import DEFAULT_AREAS
from ..targets import as_score, describe, resolve_classes
from .assemble import assemble
from .config import ContourSettings, check_starts
from .multicontour import choose, relative_objective
from .objective import Problem
from .search import search

__all__ = ["ExtremalContour"]


class ExtremalContour:
    """Explain an image classifier with the smallest smooth star-convex region that keeps (or removes)
    the evidence for a class.

    Built once around a model and called Captum-style with a batch of images.

    Args:
        model: a ``torch.nn.Module`` (or callable) mapping ``(N, C, H, W)`` to ``(N, D)``: class logits,
            or features for an embedding model. It is left exactly as given (its ``training`` flags
            are restored after each call; no hooks, no parameter or device changes).
        settings: a :class:`~extremal_contours.explainer.config.ContourSettings`; or give its fields
            as keyword arguments (``iterations=48``, ``harmonics=6``, ...).
        mean, std: the model's input normalisation, used only to show the images in saved results.
        class_names: names of the model's classes, recorded with results.
        progress: show a progress bar (``None``: only on a terminal).

    Example:
        >>> explainer = ExtremalContour(model, iterations=48)                  # doctest: +SKIP
        >>> result = explainer.attribute(x, target=285, areas=(0.05, 0.1))      # doctest: +SKIP
        >>> result.masks.shape                                                  # doctest: +SKIP
        torch.Size([1, 2, 1, 224, 224])
    """

    def __init__(
        self,
        model: nn.Module | Callable[[Tensor], Tensor],
        settings: ContourSettings | None = None,
        *,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        class_names: Sequence[str] | None = None,
        progress: bool | None = None,
        **options: Any,
    ) -> None:
        if not callable(model):
            raise TypeError(f"model must be a torch.nn.Module or a callable, got {type(model).__name__}")
        if settings is not None and options:
            raise TypeError("give either settings or options, not both")
        try:
            self.config = settings or ContourSettings(**options)
        except TypeError as exc:
            unknown = first_line(exc).split("argument")[-1].strip(" '")
            raise TypeError(f"unknown option {unknown!r} of ExtremalContour (see ContourSettings)") from None
        self.model = model
        self.mean, self.std = mean, std
        self.class_names = list(class_names) if class_names is not None else None
        self.progress = progress

    def settings(self) -> dict[str, Any]:
        """The explainer's settings, as recorded in every result."""
        return self.config.record()

    def attribute(
        self,
        x: Tensor,
        target: int | Sequence[int] | Tensor | Callable[..., Tensor] | None = None,
        *,
        areas: Sequence[float] = (0.1,),
        variant: str = "preserve",
        seed: int = 0,
        names: Sequence[str] | None = None,
        contours: int | str = 1,
        alternatives: int = 1,
    ) -> ContourResult:
        """Find the region of each area for each image.

        Args:
            x: ``(N, C, H, W)`` images, normalised as the model expects.
            target: the class to explain: one index, one per image, ``None`` (the predicted class),
                or a score callable (see :mod:`extremal_contours.targets`).
            areas: area fractions of the image, each in ``(0, 1)``; every area of every image is
                optimised in the same batch.
            variant: ``"preserve"`` (keep the evidence inside the region), ``"delete"`` (remove it by
                perturbing the region) or ``"dual"`` (both at once).
            seed: seeds the starts' jitter and the flip jitter; same seed, same result.
            names: optional image names recorded with the result.
            contours: contours per region. ``M > 1``: the region is the union of ``M`` contours
                (area on the union, their shares of it learnt, an overlap penalty, starts spread
                apart); ``"auto"``: ``M = 1, 2, ...`` up to ``max_contours``, keeping ``M + 1`` per
                (image, area) only where it raises the objective by more than ``auto_margin`` (each
                ``M`` is a full run, so this costs that many runs).
            alternatives: regions to return per (image, area): the answer and up to ``alternatives - 1``
                other regions the search found, apart from it and from each other (IoU below 0.3),
                best first (one contour per region only). Either way the search's best other region
                decides whether the answer is flagged ``ambiguous``.

        Returns:
            A :class:`~extremal_contours.result.ContourResult` with one region per (image, area);
            its ``parts`` hold the separate contours when ``contours`` is not 1, its ``alternatives``
            the other regions, its ``flags`` the warnings (see :mod:`extremal_contours.flags`).
        """
        if isinstance(alternatives, bool) or not isinstance(alternatives, int) or alternatives < 1:
            raise ValueError(f"alternatives must be a count >= 1, got {alternatives!r}")
        if alternatives > 1 and contours != 1:
            raise ValueError("alternatives are found for one contour per region; use contours=1")
        return self._explain(self.config, x, target, areas, variant, seed, names, contours, alternatives)

    def sweep(
        self,
        x: Tensor,
        target: int | Sequence[int] | Tensor | Callable[..., Tensor] | None = None,
        *,
        areas: Sequence[float] = DEFAULT_AREAS,
        variant: str = "preserve",
        seed: int = 0,
        names: Sequence[str] | None = None,
        nesting: float | None = 5.0,
        families: int | None = 2,
    ) -> ContourResult:
        """Explain every image at several areas in one batch, with nested regions.

        With ``nesting > 0`` (default 5) each start is a *family* of contours, one per area, grown
        from one centre: a penalty ``nesting * |R_small outside R_large| / |R_small|`` couples
        consecutive areas, successive halving keeps or drops whole families (by the sum of their
        areas' scores), and the answer is the best family. With ``nesting=0`` every area is
        optimised independently, exactly as :meth:`attribute`. ``docs/SWEEPS.md`` has the measured
        effect. Use :func:`extremal_contours.sweep.importance_map` and
        :func:`extremal_contours.sweep.profile` (or :mod:`extremal_contours.figures`) on the result.

        ``families`` is the number of families (starts) of a nested sweep (default 2, at most the
        explainer's ``starts``; ``None``: ``starts``). ``nesting=0`` ignores it.
        """
        areas = tuple(sorted(float(a) for a in areas))
        if len(set(areas)) != len(areas):
            raise ValueError(f"areas must be distinct, got {areas}")
        config = self.config if nesting is None else replace(self.config, nesting=nesting)
        if families is not None and config.nesting > 0:
            families = min(families, config.starts)
            check_starts(families, config.scan, "families")
            config = replace(config, starts=families)
        return self._explain(config, x, target, areas, variant, seed, names, 1, 1)

    def _explain(
        self,
        config: ContourSettings,
        x: Any,
        target: Any,
        areas: Any,
        variant: str,
        seed: int,
        names: Sequence[str] | None,
        contours: int | str,
        alternatives: int,
    ) -> ContourResult:
        started = time.perf_counter()
        x = check_images(x)
        areas = check_areas(areas, x.shape[-2], x.shape[-1])
        check_variant(variant)
        if names is not None and len(names) != x.shape[0]:
            raise ValueError(f"{len(names)} names for {x.shape[0]} images")
        if contours != "auto" and (isinstance(contours, bool) or not isinstance(contours, int) or contours < 1):
            raise ValueError(f"contours must be a count >= 1 or 'auto', got {contours!r}")
        if contours != 1 and config.nesting > 0 and len(areas) > 1:
            raise ValueError("nested sweeps use one contour per region; use contours=1 with nesting")
        if isinstance(contours, int) and not isinstance(contours, bool) and contours > config.max_contours:
            raise ValueError(f"contours must be at most max_contours ({config.max_contours}), got {contours}")
        # Gradients are the method: run with autograd on even when called under no_grad or
        # inference_mode (x is copied out of an inference tensor below).
        with eval_mode(self.model), torch.inference_mode(False), torch.enable_grad():
            if contours != "auto":
                result = self._run(config, x, target, areas, variant, seed, names, started, int(contours), alternatives)
                return replace(result, settings={**result.settings, "contours": contours})
            result = self._run(config, x, target, areas, variant, seed, names, started, 1)
            for m in range(2, config.max_contours + 1):
                more = self._run(config, x, target, areas, variant, seed, names, time.perf_counter(), m)
                gain = relative_objective(more) - relative_objective(result)
                result = choose(result, more, gain > config.auto_margin)
                if not (gain > config.auto_margin).any():
                    break
            return replace(result, settings={**result.settings, "contours": "auto"})

    def _problem(self, config: ContourSettings, x: Tensor, target: Any, variant: str) -> tuple[Problem, str]:
        """The call's fixed inputs: ``x`` on the model's device, its clean output, the target."""
        device, dtype = model_place(self.model, x)
        if config.precision != "float32" and dtype == torch.float64:
            raise ValueError(
                f"precision={config.precision!r} does nothing for a float64 model (autocast leaves float64 alone); use precision='float32'"
            )
        x = x.detach().to(device=device, dtype=dtype)
        if x.is_inference():  # made under torch.inference_mode: autograd cannot save it
            x = x.clone()
        run = ModelRunner(self.model, config.channels_last, device, config.precision)
        with torch.no_grad():
            try:
                clean = run(x)
            except (TypeError, ValueError):
                raise
            except Exception as exc:  # the model's own error, made one line
                raise ValueError(f"the model failed on input of shape {tuple(x.shape)}: {first_line(exc)}") from exc
            if not torch.isfinite(clean).all():
                raise ValueError("the model's output on the clean images contains NaN or infinite values")
        if callable(target) and not isinstance(target, Tensor):
            classes, score, name = None, as_score(target), describe(target)
        else:
            classes, score, name = resolve_classes(target, clean, config.score), as_score(config.score), describe(config.score)
        perturb = Perturbation(x, config.perturbation, **dict(config.perturbation_options))
        problem = Problem(x, run, perturb, clean, classes, score, variant, config.batch_size)
        problem.cost["eval_batches"].append(x.shape[0])
        return problem, name

    def _run(
        self,
        config: ContourSettings,
        x: Tensor,
        target: Any,
        areas: tuple[float, ...],
        variant: str,
        seed: int,
        names: Sequence[str] | None,
        started: float,
        contours: int,
        alternatives: int = 1,
    ) -> ContourResult:
        problem, score_name = self._problem(config, x, target, variant)
        answer = search(problem, config, areas, seed, contours, self.progress)
        display = {"mean": self.mean, "std": self.std, "class_names": self.class_names, "score": score_name}
        return assemble(problem, config, answer, areas, seed, names, started, display, alternatives)
