"""What the benchmark measures of one method's explanations of one batch: the rows of each CSV.

- :func:`fidelity_rows`: per (image, area) the binary mask's fidelity, shape and cost (``per_image.csv``);
- :func:`map_rows`: per image the attribution map's localisation, structure and faithfulness (``maps.csv``);
- :func:`stability_rows`: per (image, area, nuisance) the agreement with the explanation of a
  nuisance variant of the picture (``stability.csv``);
- :func:`consistency_rows`: per (image, area) the run-to-run IoU over seeds (``consistency.csv``);
- :func:`sanity_rows`: per (image, area, step) the similarity of the explanation on the model with its
  top layers randomised to ``call``'s (``sanity.csv``, see :mod:`extremal_contours.sanity`).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .. import metrics as M
from .. import nuisances as Nu
from ..baselines import Attribution
from ..data import Sample
from ..models import LoadedModel
from ..perturbation import Perturbation
from ..sanity import randomisation_similarity
from .config import BenchmarkConfig
from .rows import fmt

__all__ = [
    "Call", "binary_mask", "consistency_rows", "fidelity_rows", "map_rows", "random_class", "sanity_rows", "stability_rows",
]  # fmt: skip


@dataclass(frozen=True)
class Call:
    """One method's explanation of a batch of pictures at one seed, and its wall time."""

    method: str
    seed: int
    samples: Sequence[Sample]
    #: The pictures ``(N, C, H, W)`` on the model's device, and the classes explained ``(N,)``.
    x: Tensor
    classes: Tensor
    attribution: Attribution
    seconds: float


def binary_mask(attribution: Attribution, j: int, area: float) -> Tensor:
    """The binary explanation ``(N, 1, H, W)`` at the ``j``-th area: a mask method's own mask, else
    the top ``area`` of its map."""
    if attribution.masks is not None:
        return attribution.masks[:, j]
    return M.top_fraction_mask(attribution.maps, area)


def fidelity_rows(model: Any, call: Call, areas: Sequence[float], perturb: Perturbation) -> tuple[list[dict[str, Any]], Tensor]:
    """The ``per_image.csv`` rows of ``call`` and its binary masks ``(N, A, 1, H, W)``."""
    attribution, x, classes = call.attribution, call.x, call.classes
    count = len(call.samples)
    rows: list[dict[str, Any]] = []
    masks = []
    for j, area in enumerate(areas):
        mask = binary_mask(attribution, j, area)
        masks.append(mask)
        fid = M.fidelity(model, x, mask.to(x.device), classes, perturb)
        # What a mask method optimised, before it was made binary (dense EP's soft borders keep
        # part of the context the binary mask blurs away).
        soft = None
        if attribution.soft_masks is not None:
            soft = M.fidelity(model, x, attribution.soft_masks[:, j].to(x.device), classes, perturb, clean=fid["clean"])
        pieces, holes = M.pieces(mask), M.holes(mask)
        for i, sample in enumerate(call.samples):
            rows.append(
                {
                    "method": call.method,
                    "image": sample.name,
                    "label": int(classes[i]),
                    "area": fmt(area),
                    "seed": call.seed,
                    "visible_area": fmt(float(mask[i].float().mean())),
                    "clean_probability": fmt(float(fid["clean"][i])),
                    "preserve_ratio": fmt(float(fid["preserve_ratio"][i])),
                    "delete_drop": fmt(float(fid["delete_drop"][i])),
                    "seconds_per_image": fmt(call.seconds / count),
                    "forward_backward_per_image": fmt(attribution.forward_backward / count / len(areas)),
                    "forward_per_image": fmt(attribution.forward / count / len(areas)),
                    "batch": count,
                    "pieces": int(pieces[i]),
                    "holes": int(holes[i]),
                    "preserved_probability": fmt(float(fid["preserve"][i])),
                    "soft_preserve_ratio": fmt(float(soft["preserve_ratio"][i])) if soft is not None else "",
                }
            )
    return rows, torch.stack(masks, 1)


def map_rows(model: Any, call: Call, regions: Sequence[Tensor | None], config: BenchmarkConfig) -> list[dict[str, Any]]:
    """The ``maps.csv`` rows of ``call``: localisation (where ``regions``, the boxes as masks,
    exist), structure and, with ``config.faithfulness``, faithfulness of the maps."""
    maps = call.attribution.maps.float().cpu()
    nan = [math.nan] * len(call.samples)
    values: dict[str, list[float]] = {
        "complexity": M.complexity(maps).tolist(),
        "sparseness": M.sparseness(maps).tolist(),
        **{name: list(nan) for name in ("relevance_mass", "relevance_rank", "pointing_game")},
        **{name: list(nan) for name in ("faithfulness_correlation", "insertion_auc", "deletion_auc")},
    }
    have = [i for i, r in enumerate(regions) if r is not None and bool(r.any())]
    if have:
        gt = torch.stack([r for r in (regions[i] for i in have) if r is not None])[:, None]
        sub = maps[have]
        for name, score in (("relevance_mass", M.relevance_mass), ("relevance_rank", M.relevance_rank), ("pointing_game", M.pointing_game)):
            for k, v in zip(have, score(sub, gt).tolist(), strict=True):
                values[name][k] = v
    if config.faithfulness:
        protocol: dict[str, Any] = dict(M.FAITHFULNESS_PROTOCOLS[config.faithfulness_protocol])
        on_device = maps.to(call.x.device)
        values["faithfulness_correlation"] = M.faithfulness_correlation(
            model, call.x, on_device, call.classes, subset=config.faithfulness_subset, seed=call.seed, **protocol
        ).tolist()
        auc = M.insertion_deletion(model, call.x, on_device, call.classes)
        values["insertion_auc"] = auc["insertion"].tolist()
        values["deletion_auc"] = auc["deletion"].tolist()
    return [
        {"method": call.method, "image": sample.name, "seed": call.seed} | {k: fmt(v[i]) for k, v in values.items()}
        for i, sample in enumerate(call.samples)
    ]


def stability_rows(
    explainer: Any, call: Call, options: dict[str, Any], areas: Sequence[float], loaded: LoadedModel
) -> list[dict[str, Any]]:
    """Explain each nuisance variant of the pictures of ``call`` (same classes, same ``options``)
    and compare its masks and maps, carried back to the picture's frame, with ``call``'s."""
    attribution, x = call.attribution, call.x
    seeds = [zlib.crc32(s.name.encode()) for s in call.samples]
    out = []
    for kind in Nu.NUISANCES:
        changed = Nu.apply(x, kind, mean=loaded.mean, std=loaded.std, seeds=seeds)
        other = explainer.attribute(changed, call.classes, **options)
        window = Nu.common_window(kind, x.shape[-2], x.shape[-1])
        other_maps = Nu.carry_back(other.maps, kind)
        for j, area in enumerate(areas):
            mine, theirs = binary_mask(attribution, j, area), binary_mask(other, j, area)
            values = M.stability(mine.cpu(), Nu.carry_back(theirs.cpu(), kind), attribution.maps, other_maps, area, window)
            out += [
                {"method": attribution.method, "image": s.name, "area": fmt(area), "seed": call.seed, "nuisance": kind}
                | {k: fmt(float(v[i])) for k, v in values.items()}
                for i, s in enumerate(call.samples)
            ]
    return out


def sanity_rows(
    model: Any, call: Call, areas: Sequence[float], options: dict[str, Any], kwargs: dict[str, Any], steps: int | None, seed: int
) -> list[dict[str, Any]]:
    """The ``sanity.csv`` rows: explain the pictures of ``call`` again (same classes, ``options`` and
    ``kwargs``) on copies of ``model`` randomised cumulatively from the top layer down (``steps``
    steps, seeded by ``seed``) and compare with ``call``'s explanation; ``step`` is how many layers
    are randomised, ``layer`` the deepest of them."""
    found = randomisation_similarity(
        call.method, model, call.x, call.classes, areas=areas, steps=steps, seed=seed, options=options,
        attribute_options=kwargs, original=call.attribution,
    )  # fmt: skip
    return [
        {"method": call.method, "image": sample.name, "area": fmt(area), "step": step.step, "layer": step.layer,
         "spearman": fmt(float(step.spearman[i])), "iou": fmt(float(step.iou[i, j]))}
        for step in found
        for j, area in enumerate(areas)
        for i, sample in enumerate(call.samples)
    ]  # fmt: skip


def consistency_rows(method: str, samples: Sequence[Sample], areas: Sequence[float], masks: Sequence[Tensor]) -> list[dict[str, Any]]:
    """The ``consistency.csv`` rows: per image and area, the mean pairwise IoU of the binary
    ``masks`` ``(N, A, 1, H, W)`` of each seed's run (none for a single run)."""
    if len(masks) < 2:
        return []
    stacked = torch.stack(list(masks))  # (R, N, A, 1, H, W)
    rows = []
    for j, area in enumerate(areas):
        value = M.mean_pairwise_iou(stacked[:, :, j])
        rows += [
            {"method": method, "image": s.name, "area": fmt(area), "runs": len(masks), "iou": fmt(float(value[i]))}
            for i, s in enumerate(samples)
        ]
    return rows


def random_class(name: str, predicted: int, classes: int) -> int:
    """A class other than ``predicted``, fixed by the image name (the same in every run)."""
    g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    return (predicted + 1 + int(torch.randint(classes - 1, (1,), generator=g))) % classes
