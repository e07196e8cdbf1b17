"""From the best parameters of a search to the :class:`~extremal_contours.result.ContourResult` a user reads:
the binary regions drawn, scored with the model (preserved and deleted), and everything recorded."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .. import contour as C
from ..result import ContourParts, ContourResult, display_images
from ..scoring import score_masks
from ..versions import library_versions
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


def assemble(
    problem: Problem,
    settings: ContourSettings,
    answer: Answer,
    areas: tuple[float, ...],
    seed: int,
    names: Sequence[str] | None,
    started: float,
    display: dict[str, Any],
) -> ContourResult:
    """The result of a search: regions drawn binary (exact area) and soft (final edge), scored.

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
        **scores.fields(n, a),
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
    )
