"""The model-parameter randomisation test (Adebayo et al., 2018, "Sanity checks for saliency maps").

Randomise a model's layers from the top (the output) down, cumulatively, and measure how much a
method's explanation of the same pictures, for the same classes, changes: an explanation that does
not change when the model is destroyed explains the picture, not the model.

- :func:`layers_top_down`: the model's layers, top first. A *layer* is a module with parameters of
  its own, in the order ``named_modules()`` gives (the order the modules were registered in, which
  for common architectures is input to output), reversed; as Quantus' ``MPRT``.
- :func:`step_plan`: which cumulative steps are run: every layer, or ``steps`` of them evenly spaced,
  always the top layer alone first and every layer last.
- :func:`randomised_models`: per step a deep copy of the model with its top layers randomised (the
  user's model is never touched). A layer is re-initialised by its own ``reset_parameters()`` where it has
  one and no child with parameters (Linear, Conv, BatchNorm, LayerNorm, ...: their default
  initialisation; BatchNorm's running statistics too), else each of its own parameters is drawn from
  a normal of mean 0 and the parameter's own standard deviation (:data:`FALLBACK_STD` where that is
  0). Each layer's draw is seeded by ``seed`` and the layer's name, on the CPU, without touching the
  global random state: a layer is randomised the same way whatever the steps and the device.
- :func:`randomisation_similarity`: per step and picture, the Spearman rank correlation of the
  explanation's map with the original one (:func:`~extremal_contours.metrics.rank_correlation`; NaN
  where a map is constant) and the IoU of the binary explanations at each area (mask methods: their
  masks; map methods: the top ``area`` of their map, :func:`~extremal_contours.metrics.top_fraction_mask`).

Quantus' ``MPRT`` compares the absolute values of maps normalised by their maximum, which leaves
the ranks of this package's maps unchanged where they are non-negative (all but RISE's, which can
be negative where the class's logit is); here the maps are compared as the methods return them.
"""

from __future__ import annotations

import copy
import math
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from . import metrics as M
from .baselines import Attribution, get_explainer

__all__ = [
    "FALLBACK_STD", "ROOT_LAYER", "RandomisedModel", "SanityStep", "layers_top_down", "randomisation_similarity",
    "randomised_models", "step_plan",
]  # fmt: skip

#: Standard deviation of the normal draw of a parameter whose own values do not vary (e.g. a scalar).
FALLBACK_STD = 0.02

#: How a step names the model's own top module when it is the deepest layer randomised.
ROOT_LAYER = "(model)"


@dataclass(frozen=True)
class RandomisedModel:
    """One step of the cascade: ``model`` with its top ``step`` layers randomised, the deepest of
    them named ``layer``."""

    step: int
    layer: str
    model: nn.Module


@dataclass(frozen=True)
class SanityStep:
    """How similar a method's explanations on the model with its top ``step`` layers randomised
    (the deepest named ``layer``) are to its explanations on the original model: ``spearman``
    ``(N,)`` the maps' rank correlation, ``iou`` ``(N, A)`` the binary explanations' IoU per area."""

    step: int
    layer: str
    spearman: Tensor
    iou: Tensor


def layers_top_down(model: nn.Module) -> list[str]:
    """The names of the model's layers (modules with parameters of their own), top (output) first;
    the top module itself is ``""``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"the randomisation test needs an nn.Module, got {type(model).__name__}")
    return [name for name, m in model.named_modules() if next(m.parameters(recurse=False), None) is not None][::-1]


def step_plan(model: nn.Module, steps: int | None = None) -> list[tuple[int, str]]:
    """The cumulative steps as ``(layers randomised, deepest layer's name)``, top first: every
    layer (``steps=None``, or at least as many steps as layers), else ``steps`` counts evenly spaced
    from 1 (the top layer alone) to every layer."""
    names = layers_top_down(model)
    if not names:
        raise ValueError("the model has no parameters to randomise")
    if steps is not None and steps < 2:
        raise ValueError(f"steps must be at least 2 (the top layer alone, then every layer), got {steps}")
    total = len(names)
    if steps is None or steps >= total:
        counts = list(range(1, total + 1))
    else:
        counts = sorted({1 + round(k * (total - 1) / (steps - 1)) for k in range(steps)})
    return [(count, names[count - 1] or ROOT_LAYER) for count in counts]


def _layer_seed(seed: int, name: str) -> int:
    return zlib.crc32(f"{seed}/{name}".encode())


def _resettable(module: nn.Module) -> bool:
    """Whether ``reset_parameters()`` re-initialises the module's own parameters only."""
    if not callable(getattr(module, "reset_parameters", None)):
        return False
    return all(next(child.parameters(), None) is None for child in module.children())


def _randomise(module: nn.Module, seed: int) -> None:
    """Re-initialise the module's own parameters in place (see the module's docstring), seeded."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        if _resettable(module):
            fresh = copy.deepcopy(module).cpu().float()  # drawn on the CPU: the same on every device
            fresh.reset_parameters()  # type: ignore[operator]
            module.load_state_dict(fresh.state_dict())
            return
        for p in module.parameters(recurse=False):
            std = float(p.detach().float().std()) if p.numel() > 1 else 0.0
            if not (math.isfinite(std) and std > 0):
                std = FALLBACK_STD
            p.copy_(torch.randn(p.shape) * std)


def randomised_models(model: nn.Module, steps: int | None = None, seed: int = 0) -> Iterator[RandomisedModel]:
    """The cascade of :func:`step_plan`, top step first: each step a deep copy of ``model`` with
    its top layers randomised (the next step goes on from a copy of it: a model yielded is never
    changed afterwards). ``model`` is not changed."""
    plan = step_plan(model, steps)
    names = layers_top_down(model)
    randomised = copy.deepcopy(model)
    done = 0
    for k, (count, label) in enumerate(plan):
        if k:
            randomised = copy.deepcopy(randomised)
        modules = dict(randomised.named_modules())
        for name in names[done:count]:
            _randomise(modules[name], _layer_seed(seed, name))
        done = count
        yield RandomisedModel(step=count, layer=label, model=randomised)


def _binary(attribution: Attribution, j: int, area: float) -> Tensor:
    """The binary explanation ``(N, 1, H, W)`` at the ``j``-th area, on the CPU."""
    if attribution.masks is not None:
        return attribution.masks[:, j].cpu()
    return M.top_fraction_mask(attribution.maps, area).cpu()


def randomisation_similarity(
    method: str,
    model: nn.Module,
    x: Tensor,
    target: int | Sequence[int] | Tensor | None = None,
    *,
    areas: Sequence[float] = (0.1,),
    steps: int | None = None,
    seed: int = 0,
    options: Mapping[str, Any] | None = None,
    attribute_options: Mapping[str, Any] | None = None,
    original: Attribution | None = None,
    progress: bool | None = False,
) -> list[SanityStep]:
    """The model-parameter randomisation test of ``method`` on the pictures ``x``, top step first.

    Args:
        method, options: the method's name and its options (as for :func:`get_explainer`).
        model: the model; never changed (each step explains with a randomised copy).
        target: the classes explained (default: the model's predicted classes); the original
            model's, kept fixed at every step.
        areas: the areas of the binary explanations compared by IoU (a mask method explains at them).
        steps: how many cumulative steps (:func:`step_plan`; ``None``: every layer).
        seed: seeds the randomisation (the same seed, the same randomised models).
        attribute_options: further arguments of every ``attribute`` call (e.g. ``seed`` for the
            contour or RISE), the same at every step.
        original: the method's explanation of ``x`` on ``model`` with the same arguments, if
            already computed (a mask method's at ``areas``); else computed here.
        progress: a progress bar over the steps (``None``: on a terminal).

    Costs one explanation of ``x`` per step (and one for the original if not given).
    """
    settings = dict(options or {})
    call = dict(attribute_options or {})
    explainer = get_explainer(method, model, **settings)
    if explainer.uses_masks:
        call["areas"] = tuple(areas)
    if original is None:
        original = explainer.attribute(x, target, **call)
    elif original.masks is not None and original.masks.shape[1] != len(areas):
        raise ValueError(f"original has masks at {original.masks.shape[1]} areas, not the {len(areas)} areas given")
    classes = original.classes.to(x.device)
    mine = [_binary(original, j, a) for j, a in enumerate(areas)]
    plan = randomised_models(model, steps, seed)
    out = []
    for step in tqdm(plan, total=len(step_plan(model, steps)), desc=f"randomisation: {method}", unit="step",
                     disable=None if progress is None else not progress):  # fmt: skip
        other = get_explainer(method, step.model, **settings).attribute(x, classes, **call)
        iou = torch.stack([M.iou(m, _binary(other, j, a)) for j, (m, a) in enumerate(zip(mine, areas, strict=True))], 1)
        out.append(SanityStep(step.step, step.layer, M.rank_correlation(original.maps, other.maps), iou))
    return out
