"""From the best parameters of a search to the :class:`~extremal_contours.result.ContourResult` a user reads:
the binary regions drawn, scored with the model (preserved and deleted), and everything recorded."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .. import contour as C
from .. import nuisances
from ..flags import raise_flags
from ..perturbation import make_perturbation
from ..result import Alternatives, ContourParts, ContourResult, display_images
from ..scoring import MaskScores, score_masks
from ..versions import library_versions
from .alternatives import distinct
from .config import ContourSettings
from .multicontour import draw_regions
from .objective import Problem
from .search import Answer

__all__ = ["assemble"]


def _parts(centre: Tensor, coeffs: Tensor, scales: Tensor, outlines: Tensor, n: int, a: int) -> ContourParts | None:
    """Every contour of multi-contour regions (``None`` for one contour per region)."""
    m = centre.shape[1]
    if m == 1:
        return None
    return ContourParts(
        centre=centre.view(n, a, m, 2).cpu(),
        coeffs=coeffs.view(n, a, m, coeffs.shape[-2], 2).cpu(),
        scale=scales.view(n, a, m).cpu(),
        polygons=outlines.view(n, a, m, -1, 2).cpu(),
        count=torch.full((n, a), m),
    )


#: Points of each polygon (``contour.polygon``'s default).
POLYGON_POINTS = 256


def _ratios(scores: MaskScores, image: Tensor) -> Tensor:
    """Preserve ratio per scored mask ``(R,)``: probabilities where there are, else scores."""
    if scores.preserve_probability is not None and scores.clean_probability is not None:
        return scores.preserve_probability / scores.clean_probability[image]
    return scores.preserve_score / scores.clean_score[image]


def _shifted(problem: Problem, binary: Tensor, image: Tensor) -> Tensor:
    """Preserve ratio ``(R,)`` of each region with the picture and the region shifted by 4 px."""
    x = nuisances.shift(problem.x).contiguous()
    masks = nuisances.shift(binary.to(x.dtype), fill="zeros")
    perturb = make_perturbation(x, problem.perturb.kind, **problem.perturb.options)
    with torch.no_grad():
        clean = problem.run(x)
    scores = score_masks(problem.run, perturb, masks, image, clean, problem.classes, problem.score, problem.batch_size)
    problem.cost["eval_batches"] += [x.shape[0], 2 * masks.shape[0]]
    return _ratios(scores, image)


def _alternatives(
    problem: Problem, answer: Answer, area: Tensor, image: Tensor, count: int, n: int, a: int
) -> tuple[Alternatives | None, Tensor | None]:
    """Up to ``count`` alternatives per (image, area), scored, and the best one's preserve ratio
    ``(N, A)`` (NaN where none was found); ``(None, None)`` where the search kept no candidates."""
    if answer.candidates is None or answer.centre.shape[1] != 1:
        return None, None
    height, width = problem.size
    cand = answer.candidates
    picks = distinct(cand, (answer.centre, answer.coeffs, answer.mix), area, problem.extent, problem.size, count)
    rows = [(g, k, i) for g, chosen in enumerate(picks) for k, i in enumerate(chosen)]
    k = max(1, count)
    nan = torch.full((n * a, k), float("nan"))
    centre, coeffs = torch.zeros(n * a, k, 2), torch.zeros(n * a, k, *answer.coeffs.shape[-2:])
    scale, visible, ratio, iou = torch.zeros(n * a, k), nan.clone(), nan.clone(), nan.clone()
    polygons = torch.zeros(n * a, k, POLYGON_POINTS, 2)
    if rows:
        idx = torch.tensor([i for _, _, i in rows], device=cand.group.device)
        groups = torch.tensor([g for g, _, _ in rows], device=cand.group.device)
        with torch.no_grad():
            masks, _, scales = draw_regions(area[groups], cand.centre[idx], cand.coeffs[idx], cand.mix[idx], problem.extent, height, width, None)
            best, _, _ = draw_regions(area[groups], answer.centre[groups], answer.coeffs[groups], answer.mix[groups], problem.extent, height, width, None)
            scores = score_masks(problem.run, problem.perturb, masks, image[groups], problem.clean, problem.classes, problem.score, problem.batch_size)
            outline = C.to_pixels(C.polygon(cand.centre[idx, 0], cand.coeffs[idx, 0], scales[:, 0], extent=problem.extent), height, width)
        problem.cost["eval_batches"] += [2 * len(rows)]
        inter = (masks & best).flatten(1).sum(1).float()
        union = (masks | best).flatten(1).sum(1).float().clamp(min=1)
        slot = (groups.cpu(), torch.tensor([s for _, s, _ in rows]))
        centre[slot], coeffs[slot], scale[slot] = cand.centre[idx, 0].cpu(), cand.coeffs[idx, 0].cpu(), scales[:, 0].cpu()
        polygons[slot] = outline.cpu()
        visible[slot], ratio[slot] = masks.float().mean((1, 2, 3)).cpu(), _ratios(scores, image[groups]).float().cpu()
        iou[slot] = (inter / union).cpu()
    found = torch.tensor([len(p) for p in picks]).view(n, a)
    alternatives = Alternatives(
        centre=centre.view(n, a, k, 2), coeffs=coeffs.view(n, a, k, *coeffs.shape[-2:]), scale=scale.view(n, a, k),
        polygons=polygons.view(n, a, k, -1, 2), visible_area=visible.view(n, a, k), preserve_ratio=ratio.view(n, a, k),
        iou=iou.view(n, a, k), count=found,
    )  # fmt: skip
    return alternatives, ratio[:, 0].view(n, a)


def assemble(
    problem: Problem,
    settings: ContourSettings,
    answer: Answer,
    areas: tuple[float, ...],
    seed: int,
    names: Sequence[str] | None,
    started: float,
    display: dict[str, Any],
    alternatives: int = 1,
) -> ContourResult:
    """The result of a search: regions drawn binary (exact area) and soft (final edge), scored, with
    up to ``alternatives - 1`` other distinct regions (at least one is looked for: it decides the
    ``ambiguous`` flag) and the flags.

    ``display`` holds ``mean``, ``std`` (to show the inputs as pictures) and ``class_names``."""
    x, cost = problem.x, problem.cost
    n, _, height, width = x.shape
    a = len(areas)
    device = x.device
    image = torch.arange(n, device=device).repeat_interleave(a)
    area = torch.tensor(areas, device=device).repeat(n)
    centre, coeffs, mix = answer.centre, answer.coeffs, answer.mix
    with torch.no_grad():
        binary, _, scales = draw_regions(area, centre, coeffs, mix, problem.extent, height, width, None)
        soft, _ = C.rasterize_union(centre, coeffs, scales, height, width, settings.edge[1])
        scores = score_masks(problem.run, problem.perturb, binary, image, problem.clean, problem.classes, problem.score, problem.batch_size)
        cost["eval_batches"] += [min(problem.batch_size, n * a - s) for s in range(0, n * a, problem.batch_size) for _ in range(2)]
        outline = C.polygon(centre.flatten(0, 1), coeffs.flatten(0, 1), scales.flatten(), extent=problem.extent)
        outlines = C.to_pixels(outline, height, width).view(n * a, centre.shape[1], -1, 2)
        shifted = _shifted(problem, binary, image)
    others, runner_up = _alternatives(problem, answer, area, image, max(1, alternatives - 1), n, a)
    if others is not None and alternatives <= 1:
        others = None  # looked for only to tell unique from ambiguous
    # The main fields hold the largest contour; ``parts`` holds every one of several.
    main, pick = mix.argmax(1), torch.arange(n * a, device=device)
    cost["seconds"] = time.perf_counter() - started
    cost["steps"] = settings.iterations
    cost["forward_backward"] = sum(cost["step_batches"])
    cost["forward"] = sum(cost["eval_batches"])
    classes, class_names = problem.classes, display.get("class_names")
    labels = None
    if classes is not None and class_names is not None and len(class_names) == problem.clean.shape[1]:
        labels = tuple(class_names[int(c)] for c in classes)
    fields = scores.fields(n, a)
    preserve = _ratios(scores, image).float().view(n, a).cpu()
    drop = (1 - fields["delete_probability"] / fields["clean_probability"][:, None]) if fields["clean_probability"] is not None else (1 - fields["delete_score"] / fields["clean_score"][:, None])
    flags = raise_flags(preserve, drop, runner_up, shifted.float().view(n, a).cpu())
    return ContourResult(
        areas=areas,
        variant=problem.variant,
        image_size=(height, width),
        centre=centre[pick, main].view(n, a, 2).cpu(),
        coeffs=coeffs[pick, main].view(n, a, settings.harmonics, 2).cpu(),
        scale=scales[pick, main].view(n, a).cpu(),
        edge=settings.edge[1],
        masks=binary.view(n, a, 1, height, width).cpu(),
        soft_masks=soft.view(n, a, 1, height, width).float().cpu(),
        polygons=outlines[pick, main].view(n, a, -1, 2).cpu(),
        visible_area=binary.float().mean((1, 2, 3)).view(n, a).cpu(),
        **fields,
        classes=classes.cpu() if classes is not None else None,
        class_names=labels,
        history=answer.history.view(n, a, -1),
        score=display["score"],
        settings=settings.record(),
        cost=cost,
        seed=seed,
        versions=library_versions(),
        images=display_images(x.detach().cpu(), display.get("mean"), display.get("std")),
        names=tuple(names) if names is not None else None,
        parts=_parts(centre, coeffs, scales, outlines, n, a),
        alternatives=others,
        flags=flags,
    )
