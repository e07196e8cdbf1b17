"""Metrics on attribution maps and masks: tensor functions, batched over the first dimension.

Maps are ``(N, 1, H, W)`` or ``(N, H, W)`` (higher = more important); ground-truth regions and masks
are bool of the same spatial size. Definitions follow Quantus where it has the metric (the tests
compare against it); the fidelity scores use the model and the same perturbation as the methods.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from .perturbation import Perturbation, blur_pyramid

__all__ = [
    "FAITHFULNESS_PROTOCOLS",
    "complexity",
    "faithfulness_correlation",
    "fidelity",
    "holes",
    "insertion_deletion",
    "iou",
    "mean_pairwise_iou",
    "pieces",
    "pointing_game",
    "rank_correlation",
    "relevance_mass",
    "relevance_rank",
    "sparseness",
    "stability",
    "top_fraction_mask",
]


#: Named ways for :func:`faithfulness_correlation` to replace a random subset (its ``baseline`` and
#: ``features``): the methods' own blur over whole pixels, or Quantus' defaults.
FAITHFULNESS_PROTOCOLS: dict[str, dict[str, str]] = {
    "blur": {"baseline": "blur", "features": "pixels"},
    "quantus": {"baseline": "black", "features": "elements"},
}


def _flat(x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], -1)


def top_fraction_mask(maps: Tensor, area: float) -> Tensor:
    """The ``round(area * H * W)`` highest-valued pixels of each map as a bool mask (ties broken by
    position), so every method can be compared at the same area."""
    flat = _flat(maps).float()
    k = max(1, round(area * flat.shape[1]))
    index = flat.topk(k, dim=1).indices
    out = torch.zeros_like(flat, dtype=torch.bool).scatter_(1, index, True)
    return out.view(maps.shape)


def iou(a: Tensor, b: Tensor) -> Tensor:
    """Intersection over union of bool masks, per row ``(N,)`` (1 where both are empty)."""
    a, b = _flat(a).bool(), _flat(b).bool()
    inter = (a & b).sum(1).float()
    union = (a | b).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def mean_pairwise_iou(masks: Tensor) -> Tensor:
    """Run-to-run consistency: masks ``(R, N, ...)`` of ``R`` runs -> mean IoU over run pairs ``(N,)``."""
    runs = masks.shape[0]
    if runs < 2:
        raise ValueError("run-to-run IoU needs at least two runs")
    values = [iou(masks[i], masks[j]) for i in range(runs) for j in range(i + 1, runs)]
    return torch.stack(values).mean(0)


@torch.no_grad()
def fidelity(
    model: Callable[[Tensor], Tensor],
    x: Tensor,
    masks: Tensor,
    classes: Tensor,
    perturb: Perturbation | None = None,
    batch_size: int = 32,
    clean: Tensor | None = None,
) -> dict[str, Tensor]:
    """Preserve and delete scores of masks, with the same perturbation as the methods.

    Args:
        model: the classifier.
        x: ``(N, C, H, W)`` images.
        masks: ``(N, 1, H, W)`` bool (binary masks), or float in ``[0, 1]`` (soft masks).
        classes: ``(N,)`` target classes.
        perturb: the perturbation (default: blur pyramid of ``x``).
        clean: the class probabilities of ``x`` ``(N,)`` when already known (e.g. the ``clean`` of
            an earlier call on the same images); computed otherwise.

    Returns:
        ``clean``, ``preserve``, ``delete`` class probabilities ``(N,)`` and ``preserve_ratio``
        (preserve / clean) and ``delete_drop`` (1 - delete / clean).
    """
    perturb = perturb or Perturbation(x, "blur")
    n = x.shape[0]
    index = torch.arange(n, device=x.device)
    m = masks.to(x.dtype).reshape(n, 1, *x.shape[-2:])

    if clean is None:
        clean = _class_scores(model, x, classes, batch_size, probability=True)
    keep = _class_scores(model, perturb(m, index), classes, batch_size, probability=True)
    drop = _class_scores(model, perturb(1 - m, index), classes, batch_size, probability=True)
    return {
        "clean": clean,
        "preserve": keep,
        "delete": drop,
        "preserve_ratio": keep / clean,
        "delete_drop": 1 - drop / clean,
    }


def rank_correlation(a: Tensor, b: Tensor) -> Tensor:
    """Spearman's rank correlation between maps ``a`` and ``b`` per row, ``(N,)``: the Pearson
    correlation of their ranks, tied values sharing their mean rank (so binary maps are compared
    fairly); NaN where a map is constant."""
    from scipy.stats import rankdata

    ra = torch.from_numpy(rankdata(_flat(a).double().cpu().numpy(), axis=1))
    rb = torch.from_numpy(rankdata(_flat(b).double().cpu().numpy(), axis=1))
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    den = (ra.norm(dim=1) * rb.norm(dim=1))
    return torch.where(den > 0, (ra * rb).sum(1) / den.clamp(min=1e-300), torch.full_like(den, float("nan"))).float()


def stability(
    masks: Tensor,
    other_masks: Tensor,
    maps: Tensor,
    other_maps: Tensor,
    area: float,
    window: tuple[slice, slice] = (slice(None), slice(None)),
) -> dict[str, Tensor]:
    """How much an explanation of a picture and one of its nuisance variant (carried back to the
    picture's frame, see :mod:`extremal_contours.nuisances`) agree, per row ``(N,)``.

    Args:
        masks, other_masks: ``(N, 1, H, W)`` bool, the binary explanations.
        maps, other_maps: ``(N, 1, H, W)`` the attribution maps.
        area: the area at which maps are binarised for ``top_iou``.
        window: the rows and columns both pictures show; everything is compared there only.

    Returns:
        ``iou`` of the masks, ``spearman``: the maps' rank correlation, ``top_iou``: the IoU of the
        maps' top-``area`` binarisations (within the window).
    """
    rows, cols = window
    a, b = maps[..., rows, cols], other_maps[..., rows, cols]
    return {
        "iou": iou(masks[..., rows, cols], other_masks[..., rows, cols]),
        "spearman": rank_correlation(a, b),
        "top_iou": iou(top_fraction_mask(a, area), top_fraction_mask(b, area)),
    }


# -- localisation (ground-truth regions) ------------------------------------------------------------


def relevance_mass(maps: Tensor, regions: Tensor) -> Tensor:
    """Attribution inside the region / total attribution, ``(N,)`` (Arras et al.; Quantus'
    ``RelevanceMassAccuracy`` with ``abs=False``). Empty regions give NaN."""
    a, s = _flat(maps).double(), _flat(regions).bool()
    out = (a * s).sum(1) / a.sum(1)
    return out.masked_fill(s.sum(1) == 0, float("nan")).float()


def relevance_rank(maps: Tensor, regions: Tensor) -> Tensor:
    """Share of the ``|region|`` highest-attributed pixels that lie in the region, ``(N,)`` (Quantus'
    ``RelevanceRankAccuracy``). Ties at the cut are shared in proportion (the expected value under a
    random tie order), so a binary mask gets a fair score; without ties this is Quantus' value."""
    a, s = _flat(maps).double(), _flat(regions).bool()
    k = s.sum(1)
    ranked = a.sort(1, descending=True).values
    cut = ranked.gather(1, (k - 1).clamp(min=0)[:, None])  # the k-th largest value
    above = a > cut
    at = a == cut
    slots = (k - above.sum(1)).double()  # places left for the pixels tied at the cut
    hits = (above & s).sum(1).double() + slots * (at & s).sum(1).double() / at.sum(1).clamp(min=1).double()
    out = hits / k.clamp(min=1).double()
    return out.masked_fill(k == 0, float("nan")).float()


def pointing_game(maps: Tensor, regions: Tensor, tolerance: int = 15) -> Tensor:
    """1 if a pixel of maximal attribution lies within ``tolerance`` pixels of the region, else 0,
    ``(N,)``. ``tolerance=0`` is Quantus' ``PointingGame`` (any maximal pixel inside the region)."""
    s = regions.reshape(regions.shape[0], 1, *regions.shape[-2:]).float()
    if tolerance > 0:
        # Dilate by a disc of the tolerance radius (max-pool with a disc-shaped footprint).
        r = tolerance
        ys, xs = torch.meshgrid(torch.arange(-r, r + 1), torch.arange(-r, r + 1), indexing="ij")
        disc = ((ys * ys + xs * xs) <= r * r).float().to(s.device)[None, None]
        s = torch.nn.functional.conv2d(s, disc, padding=r) > 0
    a = _flat(maps)
    top = a == a.max(1, keepdim=True).values
    hit = (top & _flat(s).bool()).any(1).float()
    return hit.masked_fill(_flat(regions).sum(1) == 0, float("nan"))


# -- map structure -----------------------------------------------------------------------------------


def complexity(maps: Tensor) -> Tensor:
    """Entropy of the normalised absolute attribution, ``(N,)`` (Bhatt et al.; Quantus' ``Complexity``):
    lower is simpler."""
    a = _flat(maps).abs().double()
    p = a / a.sum(1, keepdim=True)
    return (-(p * torch.log(p + 1e-12)).sum(1)).float()


def sparseness(maps: Tensor) -> Tensor:
    """Gini index of the absolute attribution, ``(N,)`` (Chalasani et al.; Quantus' ``Sparseness``):
    higher is sparser."""
    a = _flat(maps).abs().double() + 1e-7
    n = a.shape[1]
    a = a.sort(1).values
    i = torch.arange(1, n + 1, dtype=a.dtype, device=a.device)
    return (((2 * i - n - 1) * a).sum(1) / (n * a.sum(1))).float()


def _count_components(masks: Tensor, diagonal: bool) -> Tensor:
    """Connected components per bool mask ``(N, H, W)``, 8-connected (``diagonal``) or 4-connected."""
    from scipy import ndimage

    structure = np.ones((3, 3), dtype=bool) if diagonal else None  # None: scipy's cross, 4-connectivity
    counts = [ndimage.label(m, structure=structure)[1] for m in masks.cpu().numpy()]
    return torch.tensor(counts, dtype=torch.long, device=masks.device)


def pieces(masks: Tensor) -> Tensor:
    """Number of separate pieces (8-connected components) of each bool mask, ``(N,)``: 1 for one
    connected region, 0 for an empty mask; dense masks that fragment score more."""
    return _count_components(masks.reshape(masks.shape[0], *masks.shape[-2:]).bool(), diagonal=True)


def holes(masks: Tensor) -> Tensor:
    """Number of holes of each bool mask, ``(N,)``: pieces of the background (4-connected, the dual
    of the masks' 8-connectivity) that do not reach the image border. A simply connected region has
    none."""
    m = masks.reshape(masks.shape[0], *masks.shape[-2:]).bool()
    outside = torch.nn.functional.pad(~m, (1, 1, 1, 1), value=True)  # the border joins every outer piece
    return _count_components(outside, diagonal=False) - 1


# -- faithfulness (model calls) --------------------------------------------------------------------


def _most_blurred(x: Tensor) -> Tensor:
    """The default baseline: level 0 of the methods' blur pyramid (the image blurred at ``max_sigma``),
    without building the other levels."""
    return blur_pyramid(x, levels=2)[:, 0]


def _class_scores(model: Callable[[Tensor], Tensor], batch: Tensor, classes: Tensor, batch_size: int, probability: bool) -> Tensor:
    out = torch.cat([model(batch[s : s + batch_size]) for s in range(0, batch.shape[0], batch_size)]).float()
    if probability:
        out = out.softmax(1)
    return out.gather(1, classes[:, None].to(out.device))[:, 0]


def _checked_subsets(subsets: Tensor, shape: tuple[int, int, int], units: int, features: str) -> Tensor:
    """``subsets`` as CPU ``long`` if they are ``shape`` distinct indices of ``units`` features per subset."""
    if tuple(subsets.shape) != shape:
        raise ValueError(f"subsets must have shape {shape}, got {tuple(subsets.shape)}")
    if subsets.is_floating_point() or subsets.is_complex() or subsets.dtype == torch.bool:
        raise ValueError(f"subsets must hold integer indices, got {subsets.dtype}")
    subsets = subsets.long().cpu()
    if subsets.numel() and not 0 <= int(subsets.min()) <= int(subsets.max()) < units:
        raise ValueError(f"subsets index {features} from 0 to {units - 1}; got {int(subsets.min())} to {int(subsets.max())}")
    if (subsets.sort(-1).values.diff(dim=-1) == 0).any():
        raise ValueError("subsets repeat an index within a subset; each must be distinct")
    return subsets


@torch.no_grad()
def faithfulness_correlation(
    model: Callable[[Tensor], Tensor],
    x: Tensor,
    maps: Tensor,
    classes: Tensor,
    *,
    runs: int = 100,
    subset: int = 224,
    baseline: str | Tensor = "blur",
    features: str = "pixels",
    subsets: Tensor | None = None,
    seed: int = 0,
    batch_size: int = 32,
) -> Tensor:
    """Pearson correlation, over ``runs`` random subsets, between the drop of the class logit when the
    subset is replaced by ``baseline`` and the attribution summed over the subset, ``(N,)`` (Bhatt et
    al.). Seeded.

    Args:
        runs, subset: how many subsets, and how many features each (Quantus: 100 of 224).
        baseline: ``"blur"`` (the most blurred level of the blur pyramid, the methods' own
            perturbation), ``"black"`` (each image's minimum value, Quantus' default) or a tensor
            shaped like ``x``.
        features: ``"pixels"`` (a subset is ``subset`` pixels, all channels) or ``"elements"`` (a subset
            is ``subset`` of the ``C * H * W`` input values, each attributed its pixel's value, as
            Quantus draws them).
        subsets: ``(N, runs, subset)`` integer indices of the features to replace, distinct within a
            subset (pixels ``h * W + w``, or values ``(c * H + h) * W + w``), instead of drawing them from
            ``seed``: reproduces another implementation's draws (Quantus draws ``subset`` per image
            for each run, batch by batch of its ``batch_size``, 64 by default).

    Maps hold one value per pixel (``(N, 1, H, W)`` or ``(N, H, W)``); with ``features="elements"``
    also one per input value (``(N, C, H, W)``). ``baseline="black", features="elements"`` follows
    Quantus' ``FaithfulnessCorrelation`` with its defaults: the same values as Quantus when given
    Quantus' subsets (tested), other random subsets otherwise."""
    n, c, h, w = x.shape
    if features not in ("pixels", "elements"):
        raise ValueError(f"features must be 'pixels' or 'elements', got {features!r}")
    if isinstance(baseline, str):
        if baseline == "blur":
            baseline = _most_blurred(x)
        elif baseline == "black":
            baseline = x.amin((1, 2, 3), keepdim=True).expand_as(x)
        else:
            raise ValueError(f"baseline must be 'blur', 'black' or a tensor like the images, got {baseline!r}")
    elif baseline.shape != x.shape:
        raise ValueError(f"baseline has shape {tuple(baseline.shape)}; the images have {tuple(x.shape)}")
    baseline = baseline.to(x)
    units = h * w if features == "pixels" else c * h * w
    a = _flat(maps).double().cpu()
    if a.shape[1] not in (h * w, units):
        raise ValueError(f"maps must hold one value per pixel{' or per input value' if units > h * w else ''}; got {tuple(maps.shape)} for images {tuple(x.shape)}")
    if runs < 2:
        raise ValueError(f"runs must be >= 2 to correlate, got {runs}")
    if not 1 <= subset < h * w:
        raise ValueError(f"subset must be between 1 and {h * w - 1} (below the pixel count, as Quantus), got {subset}")
    if subsets is not None:
        subsets = _checked_subsets(subsets, (n, runs, subset), units, features)
    g = torch.Generator().manual_seed(seed)
    clean = _class_scores(model, x, classes, batch_size, probability=False).double().cpu()
    out = torch.empty(n)
    for i in range(n):
        if subsets is not None:
            picks = subsets[i]
        else:
            picks = torch.stack([torch.randperm(units, generator=g)[:subset] for _ in range(runs)])  # (runs, subset)
        keep = torch.ones(runs, units, dtype=x.dtype).scatter_(1, picks, 0.0)
        keep = keep.view(runs, -1, h, w).to(x.device)
        batch = x[i : i + 1] * keep + baseline[i : i + 1] * (1 - keep)
        scores = _class_scores(model, batch, classes[i].expand(runs), batch_size, probability=False).double().cpu()
        drop = clean[i] - scores
        attributed = (a[i][picks] if a.shape[1] == units else a[i][picks % (h * w)]).sum(1)
        out[i] = float(torch.corrcoef(torch.stack([attributed, drop]))[0, 1])
    return out


@torch.no_grad()
def insertion_deletion(
    model: Callable[[Tensor], Tensor],
    x: Tensor,
    maps: Tensor,
    classes: Tensor,
    *,
    steps: int = 32,
    baseline: Tensor | None = None,
    batch_size: int = 32,
) -> dict[str, Tensor]:
    """Insertion and deletion AUC (Petsiuk et al.), ``(N,)`` each: the class probability as pixels are
    inserted into ``baseline`` (default: the most blurred pyramid level) or deleted from the image,
    most attributed first, in ``steps`` equal chunks; trapezoid area over ``[0, 1]``. Ties are
    broken by pixel order. Insertion: higher is better; deletion: lower is better."""
    n, _, h, w = x.shape
    if baseline is None:
        baseline = _most_blurred(x)
    order = _flat(maps).float().argsort(dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(h * w, device=order.device).expand(n, -1))
    fractions = torch.linspace(0, 1, steps + 1)
    curves = {"insertion": torch.empty(n, steps + 1), "deletion": torch.empty(n, steps + 1)}
    for i in range(n):
        counts = (fractions * h * w).round().long()
        top = (rank[i][None, :] < counts[:, None].to(rank.device)).view(steps + 1, 1, h, w).to(x.dtype)  # (S+1, 1, H, W)
        inserted = baseline[i : i + 1] + top * (x[i : i + 1] - baseline[i : i + 1])
        deleted = x[i : i + 1] + top * (baseline[i : i + 1] - x[i : i + 1])
        cls = classes[i].expand(steps + 1)
        curves["insertion"][i] = _class_scores(model, inserted, cls, batch_size, probability=True).cpu()
        curves["deletion"][i] = _class_scores(model, deleted, cls, batch_size, probability=True).cpu()
    return {name: torch.trapezoid(curve, fractions, dim=1) for name, curve in curves.items()} | {
        f"{name}_curve": curve for name, curve in curves.items()
    }
