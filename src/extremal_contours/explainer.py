"""The Extremal Contour explainer: one optimisation loop over every (image, area, start).

Each step is one forward+backward of the model on a batch holding every live combination of
image, area and start (and, for the dual game, its preserve and delete copies), cut into chunks of
at most ``batch_size`` rows to bound memory. See ``METHOD.md`` for the method and
``docs/TUNING.md`` for how the defaults were chosen.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from . import contour as C
from ._errors import first_line
from .inputs import area_tag
from .modelcall import (
    PRECISIONS,
    ModelCall,
    check_output,
    eval_mode,
    model_place,
    no_autocast,
    progress_disabled,
    wants_channels_last,
)
from .perturbation import Perturbation
from .result import ContourParts, ContourResult, display_images
from .sweep import DEFAULT_AREAS
from .targets import ScoreFn, as_score, describe, needs_class, probabilities
from .versions import library_versions

__all__ = ["VARIANTS", "ExtremalContour"]

VARIANTS = ("preserve", "delete", "dual")

#: Smallest image side the explainer accepts (a contour needs room for its edge).
MIN_SIDE = 16


def _finite(values: Tensor) -> Tensor:
    """``values`` (objectives on perturbed images), or a clear error if the model gave NaN or inf."""
    if not bool(torch.isfinite(values).all()):
        raise ValueError(
            "the model's score is NaN or infinite on a perturbed image (the clean images were fine); "
            "check the model for numerical problems (e.g. half precision) or the learning rates"
        )
    return values


#: Fewest pixels a region may cover: below this an area has nothing to show.
MIN_REGION_PIXELS = 16


def _check_areas(areas: Any, height: int, width: int) -> tuple[float, ...]:
    """The areas as distinct fractions in (0, 1), each covering at least ``MIN_REGION_PIXELS``."""
    if isinstance(areas, (int, float)) and not isinstance(areas, bool):
        areas = (areas,)
    try:
        values = tuple(float(a) for a in areas)
    except (TypeError, ValueError):
        raise TypeError(f"areas must be a sequence of fractions in (0, 1), got {areas!r}") from None
    if not values or any(not (0.0 < a < 1.0) for a in values):
        raise ValueError(f"areas must be fractions in (0, 1), got {values}")
    tags = [area_tag(a) for a in values]  # the saved files' names
    if len(set(tags)) != len(tags):
        raise ValueError(f"areas must be distinct (to 4 significant digits), got {values}")
    small = [a for a in values if a * height * width < MIN_REGION_PIXELS]
    if small:
        raise ValueError(
            f"area {small[0]:g} covers under {MIN_REGION_PIXELS} pixels of a {height}x{width} image; "
            f"use at least {MIN_REGION_PIXELS / (height * width):.2g}"
        )
    return values


def _check_starts(count: int, scan: int, name: str) -> None:
    """``count`` starts (or families) must be at least one and fit the scan's ``scan x scan`` discs."""
    if count < 1:
        raise ValueError(f"{name} must be >= 1, got {count}")
    if scan and scan * scan < count:
        raise ValueError(f"a scan grid of {scan}x{scan} cannot place {count} {name}")


def _phases(iterations: int, starts: int) -> list[tuple[int, int]]:
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


@dataclass
class _Rows:
    """The live optimisation rows: one contour each, for one (image, area) group."""

    image: Tensor  # (R,) image index
    group: Tensor  # (R,) image * A + area index
    area: Tensor  # (R,) target area
    flip: Tensor  # (R,) jitter phase, 0 or 1

    def take(self, keep: Tensor | slice) -> _Rows:
        return _Rows(self.image[keep], self.group[keep], self.area[keep], self.flip[keep])

class ExtremalContour:
    """Explain an image classifier with the smallest smooth star-convex region that keeps (or removes)
    the evidence for a class.

    The explainer is built once around a model and called Captum-style with a batch of images.

    Args:
        model: a ``torch.nn.Module`` (or callable) mapping ``(N, C, H, W)`` to ``(N, D)``: class logits,
            or features for an embedding model. It is left exactly as given (its ``training`` flags
            are restored after each call; no hooks, no parameter or device changes).
        harmonics: Fourier harmonics ``K`` of the log-radius (the contour has ``2K + 3`` numbers).
        iterations: optimisation steps.
        starts: contours optimised per (image, area); successive halving keeps the best.
        scan: side of the grid of discs scored (forward only) to place the starts; 0 places the
            starts on a fixed grid instead.
        start_jitter: the seed's random offset of each start's centre, as a fraction of the image's
            width and height (its harmonics get noise of ``start_jitter / 2k``). The default 0
            makes the explanation deterministic: the starts come from the scan alone and the seed
            only drives the flip jitter (``jitter=True``). ``docs/BENCHMARKS.md`` section 3 measures
            both.
        lr: Adam learning rate of the harmonics (normalised units).
        centre_lr: Adam learning rate of the centre (``None``: ``lr``).
        lr_end: the learning rates follow a cosine from their value to ``lr_end`` times it.
        decay: harmonic ``k`` is parameterised as ``raw_k / k^decay`` (high orders move less).
        checks: extra binary-mask checks in the last phase (each a forward pass); the best binary
            mask seen at any check is the answer.
        progressive: if > 0, harmonic ``k`` is released at ``k / (K + 1)`` of this fraction of the run.
        nesting: weight of the nesting penalty between consecutive areas of the same image in the
            last phase (one contour per area): the share of the smaller region outside the larger
            one. 0 (default) optimises every area independently; :meth:`sweep` turns it on.
        overlap: with several contours per region, weight of their pairwise overlap (relative to
            the region's area) in the loss.
        auto_margin: ``contours="auto"`` adds a contour while the objective (relative to the clean
            score) rises by more than this.
        max_contours: most contours ``contours="auto"`` tries.
        spectral: weight of ``sum_k k^2 (a_k^2 + b_k^2)`` (smoothness).
        edge: edge width in pixels at the first and the last step, annealed geometrically.
        perturbation: ``"blur"``, ``"constant"`` or ``"fade"``; ``perturbation_options`` go to
            :class:`~extremal_contours.perturbation.Perturbation`.
        score: ``"logit"``, ``"probability"``, ``"log_probability"``, ``"contrastive"``, ``"similarity"``
            or a callable (see :mod:`extremal_contours.targets`).
        jitter: flip the input horizontally on alternate steps (Fong et al.; off by default, see
            ``docs/TUNING.md``).
        batch_size: most images per forward pass (bounds memory).
        channels_last: feed the model channels-last inputs (``None``: on the CPU only, where
            convolutions run about 1.7x faster that way; the model itself is not changed).
        precision: the model's precision while the contours are optimised: ``"float32"`` or
            ``"bfloat16"`` (autocast, faster per pass where the hardware has bfloat16 arithmetic:
            recent GPUs, CPUs with AVX512-BF16 or AMX). The scores reported in the result are computed
            in float32 either way; the model itself is not changed.
        mean, std: the model's input normalisation, used only to show the images in saved results.
        class_names: names of the model's classes, recorded with results.
        progress: show a progress bar (``None``: only on a terminal).

    Example:
        >>> explainer = ExtremalContour(model)                                  # doctest: +SKIP
        >>> result = explainer.attribute(x, target=285, areas=(0.05, 0.1))      # doctest: +SKIP
        >>> result.masks.shape                                                  # doctest: +SKIP
        torch.Size([1, 2, 1, 224, 224])
    """

    def __init__(
        self,
        model: nn.Module | Callable[[Tensor], Tensor],
        *,
        harmonics: int = 8,
        iterations: int = 64,
        starts: int = 4,
        scan: int = 4,
        start_jitter: float = 0.0,
        lr: float = 0.05,
        centre_lr: float | None = 0.02,
        lr_end: float = 0.02,
        decay: float = 1.0,
        checks: int = 2,
        progressive: float = 0.0,
        spectral: float = 1e-3,
        nesting: float = 0.0,
        overlap: float = 1.0,
        auto_margin: float = 0.05,
        max_contours: int = 3,
        edge: tuple[float, float] = (8.0, 1.0),
        perturbation: str = "blur",
        perturbation_options: dict[str, Any] | None = None,
        score: str | Callable[..., Tensor] = "logit",
        jitter: bool = False,
        batch_size: int = 32,
        channels_last: bool | None = None,
        precision: str = "float32",
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        class_names: Sequence[str] | None = None,
        progress: bool | None = None,
    ) -> None:
        if not callable(model):
            raise TypeError(f"model must be a torch.nn.Module or a callable, got {type(model).__name__}")
        if harmonics < 0:
            raise ValueError(f"harmonics must be >= 0, got {harmonics}")
        if scan < 0:
            raise ValueError(f"scan must be >= 0, got {scan}")
        _check_starts(starts, scan, "starts")
        if batch_size < 2:
            raise ValueError(f"batch_size must be >= 2, got {batch_size}")
        if len(edge) != 2 or min(edge) <= 0:
            raise ValueError(f"edge must be two positive widths in pixels (first, last), got {edge}")
        self.phases = _phases(iterations, starts)
        self.model = model
        self.harmonics = harmonics
        self.iterations = iterations
        self.starts = starts
        self.scan = scan
        if start_jitter < 0:
            raise ValueError(f"start_jitter must be >= 0, got {start_jitter}")
        self.start_jitter = start_jitter
        for name, value in (("lr", lr), ("centre_lr", centre_lr if centre_lr is not None else lr), ("lr_end", lr_end)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value}")
        if checks < 0:
            raise ValueError(f"checks must be >= 0, got {checks}")
        if not (math.isfinite(spectral) and spectral >= 0):
            raise ValueError(f"spectral must be >= 0, got {spectral}")
        self.lr = lr
        self.centre_lr = lr if centre_lr is None else centre_lr
        self.decay = decay
        self.lr_end = lr_end
        self.checks = checks
        self.progressive = progressive
        if nesting < 0:
            raise ValueError(f"nesting must be >= 0, got {nesting}")
        self.nesting = nesting
        if overlap < 0:
            raise ValueError(f"overlap must be >= 0, got {overlap}")
        if max_contours < 1:
            raise ValueError(f"max_contours must be >= 1, got {max_contours}")
        self.overlap = overlap
        self.auto_margin = auto_margin
        self.max_contours = max_contours
        self.spectral = spectral
        self.edge = (float(edge[0]), float(edge[1]))
        self.perturbation = perturbation
        self.perturbation_options = dict(perturbation_options or {})
        Perturbation(torch.zeros(1, 1, 4, 4), perturbation, **self.perturbation_options)  # validate now
        self.score = score
        self._score_fn = as_score(score)
        self.jitter = jitter
        self.batch_size = batch_size
        self.channels_last = channels_last
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.precision = precision
        self._call = ModelCall(model, False)
        self.mean, self.std = mean, std
        self.class_names = list(class_names) if class_names is not None else None
        self.progress = progress

    # -- settings ---------------------------------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        """The explainer's settings, as recorded in every result."""
        return {
            "method": "extremal_contour",
            "harmonics": self.harmonics,
            "iterations": self.iterations,
            "starts": self.starts,
            "scan": self.scan,
            "start_jitter": self.start_jitter,
            "phases": [list(p) for p in self.phases],
            "lr": self.lr,
            "centre_lr": self.centre_lr,
            "decay": self.decay,
            "lr_end": self.lr_end,
            "checks": self.checks,
            "progressive": self.progressive,
            "nesting": self.nesting,
            "overlap": self.overlap,
            "auto_margin": self.auto_margin,
            "max_contours": self.max_contours,
            "spectral": self.spectral,
            "edge": list(self.edge),
            "perturbation": self.perturbation,
            "perturbation_options": self.perturbation_options,
            "score": describe(self.score),
            "jitter": self.jitter,
            "batch_size": self.batch_size,
            "channels_last": self.channels_last,
            "precision": self.precision,
        }

    # -- model calls ------------------------------------------------------------------------------

    def _run(self, x: Tensor, optimising: bool = False) -> Tensor:
        """The model's output on ``x``: while ``optimising`` in the explainer's ``precision``, otherwise
        (the clean and final scores) in the model's own, even under a caller's autocast."""
        if not optimising:
            with no_autocast(x.device.type):
                return check_output(self._call(x), x.shape[0])
        low = PRECISIONS[self.precision]
        if low is None:
            return check_output(self._call(x), x.shape[0])
        try:
            context = torch.autocast(x.device.type, dtype=low)
        except RuntimeError as exc:
            raise ValueError(f"precision={self.precision!r} needs autocast, which {x.device.type} does not have: {first_line(exc)}") from exc
        with context:
            out = check_output(self._call(x), x.shape[0])
        return out.to(torch.promote_types(out.dtype, torch.float32))

    def _chunks(self, rows: int, copies: int = 1) -> Iterator[slice]:
        """Slices of at most ``batch_size`` model inputs, each row making ``copies`` of them."""
        size = max(1, self.batch_size // copies)
        for start in range(0, rows, size):
            yield slice(start, min(rows, start + size))

    def _check_input(self, x: Any) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a tensor (N, C, H, W), got {type(x).__name__}")
        if x.dim() == 3:
            raise ValueError(f"x must be a batch (N, C, H, W); got one image {tuple(x.shape)}: use x[None]")
        if x.dim() != 4:
            raise ValueError(f"x must be a batch (N, C, H, W), got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor (the model's normalised input), got {x.dtype}")
        if x.shape[0] == 0:
            raise ValueError("x is an empty batch")
        if min(x.shape[-2:]) < MIN_SIDE:
            raise ValueError(f"images of {x.shape[-2]}x{x.shape[-1]} px are too small; at least {MIN_SIDE} px per side")
        if not torch.isfinite(x).all():
            bad = (~torch.isfinite(x)).flatten(1).any(1).nonzero()[:, 0].tolist()
            raise ValueError(f"x contains NaN or infinite values (images {bad})")
        return x

    def _resolve_target(self, target: Any, clean: Tensor) -> tuple[Tensor | None, ScoreFn, str]:
        """Classes per image (or None) and the score function."""
        n, width = clean.shape[0], clean.shape[1]
        if callable(target) and not isinstance(target, Tensor):
            return None, as_score(target), describe(target)
        if target is None:
            if not needs_class(self.score):
                return None, self._score_fn, describe(self.score)
            if clean.dim() != 2:
                raise ValueError(f"the model output has shape {tuple(clean.shape)}; give a target class or a score callable")
            classes = clean.argmax(1)
        else:
            if isinstance(target, bool):
                raise TypeError("target must be a class index, a sequence of them, or a callable")
            try:
                classes = torch.as_tensor(target, device=clean.device).reshape(-1)
            except (TypeError, ValueError, RuntimeError) as exc:
                raise TypeError(f"target must be a class index, a sequence of them, or a callable; got {target!r}") from exc
            if classes.is_floating_point() or classes.dtype == torch.bool:
                raise TypeError(f"target class indices must be integers, got {classes.dtype}")
            classes = classes.long()
            if classes.numel() == 1:
                classes = classes.expand(n)
            if classes.numel() != n:
                raise ValueError(f"target has {classes.numel()} classes for {n} images")
            bad = classes[(classes < 0) | (classes >= width)]
            if bad.numel():
                raise ValueError(f"target {bad[0].item()} is outside the model's {width} classes (0..{width - 1})")
        return classes.clone(), self._score_fn, describe(self.score)

    # -- the optimisation -------------------------------------------------------------------------

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
    ) -> ContourResult:
        """Find the contour of each area for each image.

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

        Returns:
            A :class:`~extremal_contours.result.ContourResult` with one region per (image, area);
            its ``parts`` hold the separate contours when ``contours`` is not 1.
        """
        started = time.perf_counter()
        x = self._check_input(x)
        areas = _check_areas(areas, x.shape[-2], x.shape[-1])
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
        if names is not None and len(names) != x.shape[0]:
            raise ValueError(f"{len(names)} names for {x.shape[0]} images")
        if contours != "auto" and (isinstance(contours, bool) or not isinstance(contours, int) or contours < 1):
            raise ValueError(f"contours must be a count >= 1 or 'auto', got {contours!r}")
        if contours != 1 and self.nesting > 0 and len(areas) > 1:
            raise ValueError("nested sweeps use one contour per region; use contours=1 with nesting")
        # Gradients are the method: run with autograd on even when called under no_grad or
        # inference_mode (x is copied out of an inference tensor by _attribute).
        with eval_mode(self.model), torch.inference_mode(False), torch.enable_grad():
            if contours != "auto":
                result = self._attribute(x, target, areas, variant, seed, names, started, int(contours))
                return replace(result, settings={**result.settings, "contours": contours})
            result = self._attribute(x, target, areas, variant, seed, names, started, 1)
            for m in range(2, self.max_contours + 1):
                more = self._attribute(x, target, areas, variant, seed, names, time.perf_counter(), m)
                gain = _objective(more) - _objective(result)
                result = _choose(result, more, gain > self.auto_margin)
                if not (gain > self.auto_margin).any():
                    break
            return replace(result, settings={**result.settings, "contours": "auto"})

    def _draw(
        self, rows: _Rows, centre: Tensor, coeffs: Tensor, mix: Tensor, extent: tuple[float, float],
        height: int, width: int, edge: float | None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``(union mask (R, 1, H, W), parts (R, M, 1, H, W), scales (R, M))`` of the rows' contours.

        One contour: its exact area is the row's. Several: contour ``i`` gets ``softmax(mix)_i`` of
        the area; the binary union is then refitted to the exact area (overlaps make it smaller)."""
        m = centre.shape[1]
        if m == 1:
            scale = C.scale_for_area(coeffs[:, 0], rows.area, centre[:, 0], extent)[:, None]
        elif edge is None:
            scale = C.scales_for_union(centre, coeffs, mix.softmax(-1), rows.area, extent, height, width)
        else:
            share = mix.softmax(-1)
            flat = C.scale_for_area(
                coeffs.flatten(0, 1), (rows.area[:, None] * share).flatten(), centre.flatten(0, 1), extent
            )
            scale = flat.view(-1, m)
        union, parts = C.rasterize_union(centre, coeffs, scale, height, width, edge)
        return union, parts, scale

    def _attribute(
        self,
        x: Tensor,
        target: Any,
        areas: tuple[float, ...],
        variant: str,
        seed: int,
        names: Sequence[str] | None,
        started: float,
        contours: int = 1,
    ) -> ContourResult:
        device, dtype = model_place(self.model, x)
        if self.precision != "float32" and dtype == torch.float64:
            raise ValueError(f"precision={self.precision!r} does nothing for a float64 model (autocast leaves float64 alone); use precision='float32'")
        x = x.detach().to(device=device, dtype=dtype)
        if x.is_inference():  # made under torch.inference_mode: autograd cannot save it
            x = x.clone()
        self._call = ModelCall(self.model, wants_channels_last(self.channels_last, device))
        n, _, height, width = x.shape
        extent = C.image_extent(height, width)
        cost = {"step_batches": [], "eval_batches": []}
        m = contours

        with torch.no_grad():
            try:
                clean = self._run(x)
            except (TypeError, ValueError):
                raise
            except Exception as exc:  # the model's own error, made one line
                raise ValueError(f"the model failed on input of shape {tuple(x.shape)}: {first_line(exc)}") from exc
            cost["eval_batches"].append(n)
            if not torch.isfinite(clean).all():
                raise ValueError("the model's output on the clean images contains NaN or infinite values")
        classes, score_fn, score_name = self._resolve_target(target, clean)
        clean_score = score_fn(clean, clean, classes).float()
        norm = clean_score.abs().clamp(min=0.1)  # the loss is relative to the clean score

        perturb = Perturbation(x, self.perturbation, **self.perturbation_options)
        generator = torch.Generator().manual_seed(seed)
        per_image = len(areas) * self.starts
        groups = n * len(areas)
        group_image = torch.arange(n, device=device).repeat_interleave(len(areas))
        group_area = torch.tensor(areas, device=device).repeat(n)

        copies = 2 if variant == "dual" else 1

        def objective(rows: _Rows, masks: Tensor, flip: Tensor | None) -> tuple[Tensor, Tensor]:
            """(objective to maximise, score of the first copy) for masks (R, 1, H, W)."""
            masks = masks.to(dtype)
            parts = []
            if variant in ("preserve", "dual"):
                parts.append(perturb(masks, rows.image))
            if variant in ("delete", "dual"):
                parts.append(perturb(1 - masks, rows.image))
            batch = torch.cat(parts) if len(parts) > 1 else parts[0]
            if flip is not None:
                flip2 = flip.repeat(len(parts))[:, None, None, None]
                batch = torch.where(flip2, batch.flip(-1), batch)
            out = self._run(batch, optimising=True)
            image2 = rows.image.repeat(len(parts))
            cls = classes[image2] if classes is not None else None
            score = score_fn(out, clean[image2], cls).float()
            r = rows.image.shape[0]
            if variant == "preserve":
                return score, score
            if variant == "delete":
                return -score, score
            return score[:r] - score[r:], score[:r]

        def evaluate(rows: _Rows, centre: Tensor, coeffs: Tensor, mix: Tensor) -> Tensor:
            """Objective of the binary masks, no gradient, (R,)."""
            values = []
            with torch.no_grad():
                for sl in self._chunks(rows.image.shape[0], copies):
                    part = rows.take(sl)
                    masks, _, _ = self._draw(part, centre[sl], coeffs[sl], mix[sl], extent, height, width, None)
                    value, _ = objective(part, masks, None)
                    cost["eval_batches"].append(value.shape[0] * copies)
                    values.append(value)
            return _finite(torch.cat(values))

        best_value = torch.full((groups,), -math.inf, device=device)
        best_centre = torch.zeros(groups, m, 2, device=device)
        best_coeffs = torch.zeros(groups, m, self.harmonics, 2, device=device)
        best_mix = torch.zeros(groups, m, device=device)

        def remember(value: Tensor, rows: _Rows, centre: Tensor, coeffs: Tensor, mix: Tensor) -> None:
            """Keep, per group, the best binary mask seen so far."""
            value = value / norm[rows.image]  # relative to the clean score
            better = torch.full((groups,), -math.inf, device=device).scatter_reduce(0, rows.group, value, "amax")
            improved = better > best_value
            if not improved.any():
                return
            # Row holding each group's maximum (the first if tied).
            is_max = value == better[rows.group]
            order = torch.arange(value.shape[0], device=device)
            first = torch.full((groups,), value.shape[0], device=device).scatter_reduce(
                0, rows.group, torch.where(is_max, order, value.shape[0]), "amin"
            )
            idx = first[improved]
            best_value[improved] = better[improved]
            best_centre[improved] = centre[idx]
            best_coeffs[improved] = coeffs[idx]
            best_mix[improved] = mix[idx]

        # -- starts -----------------------------------------------------------------------------
        # Nested sweeps: each start is a family of contours, one per area, from one centre (the scan's
        # picks for the area nearest 0.1, scanned once per image), coupled by the nesting penalty and
        # pruned together; the answer is the best family, so the scanned discs are not candidates.
        family = self.nesting > 0 and len(areas) > 1
        if family:
            pick = min(areas, key=lambda a: abs(a - 0.1))
            centre0 = self._starts(
                n, torch.arange(n, device=device), torch.full((n,), pick, device=device), extent, evaluate,
                lambda *_: None, device, m,
            )  # fmt: skip
            centre0 = centre0[:, None].expand(-1, len(areas), -1, -1, -1)
        else:
            centre0 = self._starts(groups, group_image, group_area, extent, evaluate, remember, device, m)
        rows = _Rows(
            image=group_image.repeat_interleave(self.starts),
            group=torch.arange(groups, device=device).repeat_interleave(self.starts),
            area=group_area.repeat_interleave(self.starts),
            # Every image draws the same numbers from the seed: an image's explanation does not
            # depend on the other images of the batch.
            flip=torch.randint(0, 2, (per_image,), generator=generator).bool().repeat(n).to(device),
        )
        total = rows.image.shape[0]
        jitter = ((torch.rand(per_image, m, 2, generator=generator) * 2 - 1) * self.start_jitter * torch.tensor(extent)).repeat(n, 1, 1)
        k = torch.arange(1, self.harmonics + 1, dtype=torch.float32)
        # The optimiser moves raw harmonics; a_k = raw_k / k^decay, so high orders move less per step.
        precond = (k ** -self.decay)[:, None].to(device)
        noise = torch.randn(per_image, m, self.harmonics, 2, generator=generator) * (self.start_jitter / 2 / k)[:, None]
        noise = noise.repeat(n, 1, 1, 1)
        margin = 2 * C.pixel_unit(height, width)
        bound = torch.tensor([extent[0] / 2 - margin, extent[1] / 2 - margin], device=device)
        if family:
            jitter = jitter.view(n, len(areas), self.starts, m, 2)[:, :1].expand(-1, len(areas), -1, -1, -1).reshape(total, m, 2)
        centre = centre0.reshape(total, m, 2) + jitter.to(device)
        centre = torch.maximum(torch.minimum(centre, bound), -bound).requires_grad_()
        raw = (noise.to(device) / precond).requires_grad_()
        mix = torch.zeros(total, m, device=device, requires_grad=m > 1)
        params = [centre, raw] + ([mix] if m > 1 else [])
        rates = [self.centre_lr, self.lr] + ([self.lr] if m > 1 else [])

        weights = torch.arange(1, self.harmonics + 1, device=device, dtype=torch.float32) ** 2
        history = torch.full((groups, self.iterations), math.nan)
        edge0, edge1 = self.edge
        last = self.phases[-1][0]
        # Binary checks in the last phase (besides its end), evenly spread over its second half.
        check_steps = {self.iterations - 1 - (i * last) // (2 * self.checks + 1) for i in range(1, self.checks + 1)}
        step = 0
        bar = tqdm(total=self.iterations, desc="contours", unit="step", disable=progress_disabled(self.progress), leave=False)
        try:
            for phase, (length, keep) in enumerate(self.phases):
                if phase == 0:
                    optimiser = torch.optim.Adam([{"params": [p], "lr": lr} for p, lr in zip(params, rates, strict=True)])
                else:
                    # Successive halving on the binary masks' objective (also candidates themselves).
                    value = evaluate(rows, centre.detach(), raw.detach() * precond, mix.detach())
                    remember(value, rows, centre.detach(), raw.detach() * precond, mix.detach())
                    if family:
                        chosen = _top_families(value / norm[rows.image], n, len(areas), keep)
                    else:
                        chosen = _top_per_group(value / norm[rows.image], rows.group, groups, keep)
                    rows = rows.take(chosen)
                    params = [p.detach()[chosen].requires_grad_() for p in params]
                    centre, raw = params[0], params[1]
                    mix = params[2] if m > 1 else mix[chosen]
                    optimiser = _carry_adam(optimiser, params, chosen)
                for _ in range(length):
                    fraction = step / max(1, self.iterations - 1)
                    edge = edge0 * (edge1 / edge0) ** fraction
                    factor = self.lr_end + (1 - self.lr_end) * 0.5 * (1 + math.cos(math.pi * fraction))
                    for group, base in zip(optimiser.param_groups, rates, strict=True):
                        group["lr"] = base * factor
                    grads = [torch.zeros_like(p) for p in params]
                    soft = []
                    for sl in self._chunks(rows.image.shape[0], copies):
                        part = rows.take(sl)
                        with torch.enable_grad():
                            k_leaf = raw[sl] * precond
                            masks, pieces, _ = self._draw(part, centre[sl], k_leaf, mix[sl], extent, height, width, edge)
                            flip = (part.flip ^ bool(step % 2)) if self.jitter else None
                            value, _ = objective(part, masks, flip)
                            loss = -(value / norm[part.image]).sum()
                            if self.spectral:
                                loss = loss + self.spectral * ((k_leaf * k_leaf).sum(-1) * weights).sum()
                            if m > 1 and self.overlap:
                                # Pairwise overlap sum_{i<j} |R_i n R_j|, relative to the target area.
                                total_mask = pieces.sum(1)
                                pairs = 0.5 * (total_mask * total_mask - (pieces * pieces).sum(1))
                                loss = loss + self.overlap * (pairs.mean((1, 2, 3)) / part.area).sum()
                            got = torch.autograd.grad(loss, params, allow_unused=True)
                        for total_grad, g in zip(grads, got, strict=True):
                            if g is not None:
                                total_grad += g
                        cost["step_batches"].append(part.image.shape[0] * copies)
                        soft.append(value.detach())
                    if family:
                        gc, gk = self._nesting_grad(centre, raw, precond, rows, areas, extent, height, width, edge)
                        grads[0] += gc
                        grads[1] += gk
                    if self.progressive > 0:
                        # Coarse to fine: harmonic k joins once the step passes k / (K + 1) of the ramp.
                        active = math.floor((self.harmonics + 1) * fraction / self.progressive)
                        grads[1][..., active:, :] = 0
                    for p, g in zip(params, grads, strict=True):
                        p.grad = g
                    optimiser.step()
                    with torch.no_grad():
                        centre.copy_(torch.maximum(torch.minimum(centre, bound), -bound))
                    # One copy to the host per step (the history), checked there: no extra sync.
                    history[:, step] = torch.full((groups,), -math.inf).scatter_reduce(
                        0, rows.group.cpu(), _finite(torch.cat(soft).float().cpu()), "amax"
                    )
                    if step in check_steps:
                        state = (centre.detach(), raw.detach() * precond, mix.detach())
                        remember(evaluate(rows, *state), rows, *state)
                    step += 1
                    bar.update(1)
            state = (centre.detach(), raw.detach() * precond, mix.detach())
            value = evaluate(rows, *state)
            if family:
                # The answer is the best family as a whole (nested), not the best contour per area.
                chosen = _top_families(value / norm[rows.image], n, len(areas), 1)
                best_centre, best_coeffs, best_mix = (s[chosen] for s in state)
            else:
                remember(value, rows, *state)
        finally:
            bar.close()

        return self._finish(
            x, perturb, clean, classes, clean_score, score_fn, score_name, areas, variant, seed, names,
            best_centre, best_coeffs, best_mix, history, cost, started, extent,
        )  # fmt: skip

    def _nesting_grad(
        self,
        centre: Tensor,
        raw: Tensor,
        precond: Tensor,
        rows: _Rows,
        areas: tuple[float, ...],
        extent: tuple[float, float],
        height: int,
        width: int,
        edge: float,
    ) -> tuple[Tensor, Tensor]:
        """Gradient of ``nesting * sum_j |R_j \\ R_j+1| / |R_j|`` over consecutive areas of each image
        (rows are ordered image, area, family; one contour per row). Drawn at a quarter of the
        resolution (at least 32 px a side): geometry only, no model pass."""
        factor = max(1, min(height, width) // 32)
        factor = min(factor, 4)
        h, w = max(8, height // factor), max(8, width // factor)
        order = sorted(range(len(areas)), key=lambda j: areas[j])
        n = rows.image.shape[0] // len(areas)
        with torch.enable_grad():
            c_leaf, k_leaf = centre[:, 0], raw[:, 0] * precond
            scale = C.scale_for_area(k_leaf, rows.area, c_leaf, extent)
            masks = C.rasterize(c_leaf, k_leaf, scale, h, w, edge=edge / factor).view(n, len(areas), -1, h * w)
            small, large = masks[:, order[:-1]], masks[:, order[1:]]
            outside = (small - large).clamp(min=0).sum(-1) / small.sum(-1).clamp(min=1.0)
            loss = self.nesting * outside.sum()
            return torch.autograd.grad(loss, [centre, raw])

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
        explainer's ``starts``; ``None``: ``starts``). Two families make a sweep of 7 areas cheaper
        than 7 separate runs (``docs/SWEEPS.md``); ``nesting=0`` ignores it.
        """
        areas = tuple(sorted(float(a) for a in areas))
        if len(set(areas)) != len(areas):
            raise ValueError(f"areas must be distinct, got {areas}")
        saved = self.nesting, self.starts, self.phases
        if nesting is not None:
            if nesting < 0:
                raise ValueError(f"nesting must be >= 0, got {nesting}")
            self.nesting = nesting
        if families is not None and self.nesting > 0:
            families = min(families, self.starts)
            _check_starts(families, self.scan, "families")
            self.starts, self.phases = families, _phases(self.iterations, families)
        try:
            return self.attribute(x, target, areas=areas, variant=variant, seed=seed, names=names)
        finally:
            self.nesting, self.starts, self.phases = saved

    def _starts(
        self,
        groups: int,
        group_image: Tensor,
        group_area: Tensor,
        extent: tuple[float, float],
        evaluate: Callable[[_Rows, Tensor, Tensor, Tensor], Tensor],
        remember: Callable[[Tensor, _Rows, Tensor, Tensor, Tensor], None],
        device: torch.device,
        contours: int = 1,
    ) -> Tensor:
        """Initial centres ``(groups, starts, M, 2)``: the best discs of a scan, or a fixed grid.

        One contour: the scanned discs are candidate answers too, so no answer scores below the best
        disc. Several: the discs have ``1/M`` of the area; start ``s`` puts its first contour on the
        ``s``-th best disc and each next one on the best disc at least two disc radii from those
        already placed (else the farthest)."""
        w, h = extent
        if self.scan == 0:
            side = math.ceil(math.sqrt(self.starts * contours))
            grid = _grid(side, w, h, device)
            # Centre first, then the rest of the grid by distance to the centre.
            order = torch.argsort(grid.norm(dim=1), stable=True)
            if contours == 1:
                return grid[order[: self.starts]][None, :, None].expand(groups, -1, -1, -1)
            value = -grid.norm(dim=1)[None].expand(groups, -1)
        else:
            grid = _grid(self.scan, w, h, device)  # (G, 2)
            g = grid.shape[0]
            rows = _Rows(
                image=group_image.repeat_interleave(g),
                group=torch.arange(groups, device=device).repeat_interleave(g),
                area=group_area.repeat_interleave(g) / contours,
                flip=torch.zeros(groups * g, dtype=torch.bool, device=device),
            )
            centres = grid.repeat(groups, 1)[:, None]
            coeffs = torch.zeros(groups * g, 1, self.harmonics, 2, device=device)
            mix = torch.zeros(groups * g, 1, device=device)
            value = evaluate(rows, centres, coeffs, mix)
            if contours == 1:
                remember(value, rows, centres, coeffs, mix)
                best = value.view(groups, g).topk(self.starts, dim=1).indices  # (groups, starts)
                return grid[best][:, :, None]
            value = value.view(groups, g)
        apart = 2 * torch.sqrt(group_area / contours / math.pi)  # two disc radii, (groups,)
        return _spread(value, grid, self.starts, contours, apart)

    def _finish(
        self,
        x: Tensor,
        perturb: Perturbation,
        clean: Tensor,
        classes: Tensor | None,
        clean_score: Tensor,
        score_fn: ScoreFn,
        score_name: str,
        areas: tuple[float, ...],
        variant: str,
        seed: int,
        names: Sequence[str] | None,
        centre: Tensor,
        coeffs: Tensor,
        mix: Tensor,
        history: Tensor,
        cost: dict[str, Any],
        started: float,
        extent: tuple[float, float],
    ) -> ContourResult:
        n, _, height, width = x.shape
        a = len(areas)
        m = centre.shape[1]
        device = x.device
        image = torch.arange(n, device=device).repeat_interleave(a)
        area = torch.tensor(areas, device=device).repeat(n)
        with torch.no_grad():
            everything = _Rows(image, torch.arange(n * a, device=device), area, torch.zeros_like(image, dtype=torch.bool))
            binary, _, scales = self._draw(everything, centre, coeffs, mix, extent, height, width, None)
            soft, _ = C.rasterize_union(centre, coeffs, scales, height, width, self.edge[1])
            kept, removed = [], []
            for sl in self._chunks(image.shape[0]):
                region = binary[sl].to(x.dtype)
                kept.append(self._run(perturb(region, image[sl])))
                removed.append(self._run(perturb(1 - region, image[sl])))
                cost["eval_batches"] += [region.shape[0], region.shape[0]]
            out_keep, out_del = torch.cat(kept), torch.cat(removed)
            cls = classes[image] if classes is not None else None
            keep_score = score_fn(out_keep, clean[image], cls).float()
            del_score = score_fn(out_del, clean[image], cls).float()
            outline = C.polygon(centre.flatten(0, 1), coeffs.flatten(0, 1), scales.flatten(), extent=extent)
            outlines = C.to_pixels(outline, height, width).view(n * a, m, -1, 2)
        # The main fields hold the largest contour; ``parts`` holds every one of several.
        main = mix.argmax(1)
        pick = torch.arange(n * a, device=device)
        centre1, coeffs1, scale, polygons = centre[pick, main], coeffs[pick, main], scales[pick, main], outlines[pick, main]
        parts = None
        if m > 1:
            parts = ContourParts(
                centre=centre.view(n, a, m, 2).cpu(),
                coeffs=coeffs.view(n, a, m, self.harmonics, 2).cpu(),
                scale=scales.view(n, a, m).cpu(),
                polygons=outlines.view(n, a, m, -1, 2).cpu(),
                count=torch.full((n, a), m),
            )
        prob = None
        if classes is not None and clean.dim() == 2:
            prob = (
                probabilities(clean, classes),
                probabilities(out_keep, cls).view(n, a),
                probabilities(out_del, cls).view(n, a),
            )
        cost["seconds"] = time.perf_counter() - started
        cost["steps"] = self.iterations
        cost["forward_backward"] = sum(cost["step_batches"])
        cost["forward"] = sum(cost["eval_batches"])
        label_names = None
        if classes is not None and self.class_names is not None and len(self.class_names) == clean.shape[1]:
            label_names = tuple(self.class_names[int(c)] for c in classes)
        return ContourResult(
            areas=areas,
            variant=variant,
            image_size=(height, width),
            centre=centre1.view(n, a, 2).cpu(),
            coeffs=coeffs1.view(n, a, self.harmonics, 2).cpu(),
            scale=scale.view(n, a).cpu(),
            edge=self.edge[1],
            masks=binary.view(n, a, 1, height, width).cpu(),
            soft_masks=soft.view(n, a, 1, height, width).float().cpu(),
            polygons=polygons.view(n, a, -1, 2).cpu(),
            visible_area=binary.float().mean((1, 2, 3)).view(n, a).cpu(),
            preserve_score=keep_score.view(n, a).cpu(),
            delete_score=del_score.view(n, a).cpu(),
            clean_score=clean_score.cpu(),
            classes=classes.cpu() if classes is not None else None,
            class_names=label_names,
            clean_probability=prob[0].cpu() if prob else None,
            preserve_probability=prob[1].cpu() if prob else None,
            delete_probability=prob[2].cpu() if prob else None,
            history=history.view(n, a, -1),
            score=score_name,
            settings=self.settings(),
            cost=cost,
            seed=seed,
            versions=library_versions(),
            images=display_images(x.detach().cpu(), self.mean, self.std),
            names=tuple(names) if names is not None else None,
            parts=parts,
        )


def _grid(side: int, w: float, h: float, device: torch.device) -> Tensor:
    """Cell centres of a ``side x side`` grid over the image, ``(side^2, 2)``, row-major."""
    ticks = (torch.arange(side, device=device, dtype=torch.float32) + 0.5) / side - 0.5
    gy, gx = torch.meshgrid(ticks * h, ticks * w, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)


def _top_families(value: Tensor, images: int, areas: int, keep: int) -> Tensor:
    """Row indices of the ``keep`` best families per image (rows ordered image, area, family; a
    family's score is the sum over its areas), for every area, in row order."""
    per = value.shape[0] // (images * areas)
    total = value.view(images, areas, per).sum(1)  # (images, per)
    top = total.topk(min(keep, per), dim=1).indices.sort(dim=1).values  # (images, keep)
    base = (torch.arange(images * areas, device=value.device) * per).view(images, areas, 1)
    return (base + top[:, None, :]).reshape(-1)


def _top_per_group(value: Tensor, group: Tensor, groups: int, keep: int) -> Tensor:
    """Indices of the ``keep`` best rows of each group (rows of a group are contiguous and equal in number)."""
    per = value.shape[0] // groups
    top = value.view(groups, per).topk(min(keep, per), dim=1).indices
    offset = torch.arange(groups, device=value.device)[:, None] * per
    return (top + offset).reshape(-1).sort().values


def _objective(result: ContourResult) -> Tensor:
    """``(N, A)`` the binary regions' objective relative to the clean score, as optimised."""
    norm = result.clean_score.abs().clamp(min=0.1)[:, None]
    keep, drop = result.preserve_score / norm, result.delete_score / norm
    return {"preserve": keep, "delete": -drop, "dual": keep - drop}[result.variant]


def _choose(old: ContourResult, new: ContourResult, better: Tensor) -> ContourResult:
    """``old`` with the (image, area) regions where ``better`` (N, A) is true taken from ``new``; the
    costs add up."""
    parts, new_parts = old.all_parts(), new.all_parts()
    slots = max(parts.slots, new_parts.slots)
    parts, new_parts = parts.padded(slots), new_parts.padded(slots)

    def pick(a: Tensor, b: Tensor) -> Tensor:
        return torch.where(better.view(*better.shape, *([1] * (a.dim() - 2))), b, a)

    changes: dict[str, Any] = {}
    for name in ("centre", "coeffs", "scale", "masks", "soft_masks", "polygons", "visible_area", "preserve_score",
                 "delete_score", "preserve_probability", "delete_probability", "history"):  # fmt: skip
        a, b = getattr(old, name), getattr(new, name)
        if a is not None:
            changes[name] = pick(a, b)
    changes["parts"] = ContourParts(
        centre=pick(parts.centre, new_parts.centre),
        coeffs=pick(parts.coeffs, new_parts.coeffs),
        scale=pick(parts.scale, new_parts.scale),
        polygons=pick(parts.polygons, new_parts.polygons),
        count=torch.where(better, new_parts.count, parts.count),
    )
    cost = dict(old.cost)
    for key in ("seconds", "forward_backward", "forward"):
        cost[key] = old.cost.get(key, 0) + new.cost.get(key, 0)
    for key in ("step_batches", "eval_batches"):
        cost[key] = list(old.cost.get(key, [])) + list(new.cost.get(key, []))
    return replace(old, **changes, cost=cost)


def _spread(value: Tensor, grid: Tensor, starts: int, contours: int, apart: Tensor) -> Tensor:
    """Centres ``(groups, starts, M, 2)`` from candidates ``grid (G, 2)`` scored ``value (groups, G)``:
    start ``s`` begins at the ``s``-th best candidate, each further contour takes the best candidate
    at least ``apart`` from those placed, or the farthest one if none is."""
    groups, g = value.shape
    order = value.argsort(dim=1, descending=True, stable=True).tolist()
    dist = torch.cdist(grid, grid)
    out = torch.empty(groups, starts, contours, 2, device=grid.device)
    for i in range(groups):
        for s in range(starts):
            chosen = [order[i][s % g]]
            while len(chosen) < contours:
                gap = dist[:, chosen].min(1).values
                free = [j for j in order[i] if j not in chosen and gap[j] >= apart[i]]
                chosen.append(free[0] if free else int(gap.argmax()))
            out[i, s] = grid[chosen]
    return out


def _carry_adam(old: torch.optim.Adam, params: list[Tensor], keep: Tensor) -> torch.optim.Adam:
    """A new Adam over the pruned parameters (one per group, in order) that keeps the survivors'
    moments and each group's learning rate."""
    groups = [{"params": [p], "lr": g["lr"]} for p, g in zip(params, old.param_groups, strict=True)]
    new = torch.optim.Adam(groups)
    for group, p_new in zip(old.param_groups, params, strict=True):
        state = old.state.get(group["params"][0])
        if state:
            new.state[p_new] = {
                key: (value[keep].clone() if torch.is_tensor(value) and value.dim() > 0 else value)
                for key, value in state.items()
            }
    return new
