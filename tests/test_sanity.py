"""The model-parameter randomisation test (extremal_contours.sanity) on cases with known answers."""

import itertools
import math

import pytest
import torch
from torch import nn

from conftest import BrightSpot, TinyNet, disc_image
from extremal_contours.sanity import (
    ROOT_LAYER,
    layers_top_down,
    randomisation_similarity,
    randomised_models,
    step_plan,
)

TINY_LAYERS = ["head", "features.4", "features.1", "features.0"]


class OffsetSpot(nn.Module):
    """BrightSpot's logits plus an offset per class that depends on the weights only: every
    gradient and every logit difference with respect to the picture is the same whatever the
    weights, so gradient and perturbation explanations provably do not change."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.spot = BrightSpot()
        self.offset = nn.Linear(1, 2)
        self.gain = nn.Parameter(torch.tensor(0.5))  # multiplies only the offset

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ones = torch.ones(x.shape[0], 1, device=x.device)
        return self.spot(x) + self.gain * self.offset(ones)


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_layers_are_the_modules_with_own_parameters_top_first():
    model = TinyNet()
    assert layers_top_down(model) == TINY_LAYERS
    assert layers_top_down(OffsetSpot()) == ["offset", ""]  # the top module's own parameter is the root
    with pytest.raises(TypeError, match=r"needs an nn\.Module"):
        layers_top_down(lambda x: x)


def test_step_plan_every_layer_or_evenly_spaced_with_the_top_and_everything():
    model = TinyNet()
    assert step_plan(model) == [(1, "head"), (2, "features.4"), (3, "features.1"), (4, "features.0")]
    assert [c for c, _ in step_plan(model, 2)] == [1, 4]
    assert [c for c, _ in step_plan(model, 3)] == [1, 3, 4]
    assert [c for c, _ in step_plan(model, 10)] == [1, 2, 3, 4]
    big = nn.Sequential(*[nn.Linear(2, 2) for _ in range(99)])
    counts = [c for c, _ in step_plan(big, 10)]
    assert len(counts) == 10 and counts[0] == 1 and counts[-1] == 99 and counts == sorted(set(counts))
    assert max(b - a for a, b in itertools.pairwise(counts)) <= 12
    assert step_plan(OffsetSpot())[-1] == (2, ROOT_LAYER)
    with pytest.raises(ValueError, match="at least 2"):
        step_plan(model, 1)
    with pytest.raises(ValueError, match="no parameters"):
        step_plan(BrightSpot())


def test_randomisation_is_cumulative_top_down_seeded_and_leaves_the_model_alone():
    model = TinyNet()
    with torch.no_grad():
        model.features[1].weight.fill_(2.0)  # batch norm resets to weight 1: now a reset shows
    before, rng = _state(model), torch.get_rng_state()
    originals = dict(model.named_modules())
    changed = []
    for step in randomised_models(model):
        modules = dict(step.model.named_modules())
        changed.append([name for name in TINY_LAYERS if any(
            not torch.equal(p, originals[name].get_parameter(k)) for k, p in modules[name].named_parameters(recurse=False)
        )])  # fmt: skip
    assert changed == [TINY_LAYERS[: k + 1] for k in range(4)]
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    assert torch.equal(torch.get_rng_state(), rng)  # the global random state is untouched
    # The same seed draws the same models; another seed others; the same layer the same way whatever the steps.
    a = [_state(s.model) for s in randomised_models(model, seed=3)]
    b = [_state(s.model) for s in randomised_models(model, seed=3)]
    c = [_state(s.model) for s in randomised_models(model, seed=4)]
    two = [_state(s.model) for s in randomised_models(model, steps=2, seed=3)]
    assert all(torch.equal(x[k], y[k]) for x, y in zip(a, b, strict=True) for k in x)
    assert not torch.equal(a[0]["head.weight"], c[0]["head.weight"])
    assert all(torch.equal(two[0][k], a[0][k]) and torch.equal(two[1][k], a[-1][k]) for k in a[0])


def test_batch_norm_statistics_are_reset_and_parameters_without_reset_drawn():
    model = TinyNet()
    with torch.no_grad():
        model.features[1].running_mean.fill_(3.0)
    last = list(randomised_models(model))[-1].model
    assert torch.equal(last.features[1].running_mean, torch.zeros(8))
    spot = OffsetSpot()
    gains = [float(s.model.gain.detach()) for s in randomised_models(spot)]
    assert gains[0] == 0.5 and gains[1] != 0.5 and math.isfinite(gains[1])


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients", "occlusion"])
def test_an_explanation_that_ignores_the_weights_is_similar_at_every_step(method):
    x, _ = disc_image()
    options = {"integrated_gradients": {"steps": 8}, "occlusion": {"window": 16, "stride": 8}}.get(method, {})
    steps = randomisation_similarity(method, OffsetSpot(), x, 0, areas=(0.1, 0.2), options=options)
    assert [(s.step, s.layer) for s in steps] == [(1, "offset"), (2, ROOT_LAYER)]
    for s in steps:
        assert s.spearman.shape == (1,) and s.iou.shape == (1, 2)
        assert float(s.spearman[0]) == pytest.approx(1.0, abs=1e-5)
        assert torch.allclose(s.iou, torch.ones(1, 2))


@pytest.mark.parametrize("method", ["saliency", "gradcam"])
def test_randomising_the_top_layer_alone_changes_a_model_dependent_explanation(method):
    model = TinyNet(classes=3).eval()
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    before = _state(model)
    steps = randomisation_similarity(method, model, x, [0, 1, 2])
    assert [s.layer for s in steps] == TINY_LAYERS
    top = steps[0]
    assert top.spearman.shape == (3,) and top.iou.shape == (3, 1)
    assert float(top.spearman.nan_to_num(0).max()) < 0.95  # the top layer alone already changes every map
    assert float(top.iou.min()) < 1
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    again = randomisation_similarity(method, model, x, [0, 1, 2])
    for s, t in zip(steps, again, strict=True):
        assert torch.equal(s.spearman.nan_to_num(7), t.spearman.nan_to_num(7)) and torch.equal(s.iou, t.iou)


def test_a_mask_method_uses_its_masks_and_a_given_original():
    from extremal_contours.baselines import get_explainer

    model = TinyNet(classes=3).eval()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    options = {"iterations": 4, "starts": 1, "scan": 2}
    original = get_explainer("contour", model, **options).attribute(x, [2, 1], areas=(0.1,), seed=0)
    given = randomisation_similarity(
        "contour", model, x, [2, 1], steps=2, options=options, attribute_options={"seed": 0}, original=original
    )
    computed = randomisation_similarity("contour", model, x, [2, 1], steps=2, options=options, attribute_options={"seed": 0})
    assert [(s.step, s.layer) for s in given] == [(1, "head"), (4, "features.0")]
    for s, t in zip(given, computed, strict=True):
        assert ((s.iou >= 0) & (s.iou <= 1)).all() and torch.equal(s.iou, t.iou)
        assert torch.equal(s.spearman.nan_to_num(7), t.spearman.nan_to_num(7))
    with pytest.raises(ValueError, match="areas"):
        randomisation_similarity("contour", model, x, [2, 1], areas=(0.1, 0.2), options=options, original=original)


def test_the_explained_classes_are_the_original_models_at_every_step():
    model = TinyNet(classes=3).eval()
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        predicted = model(x).argmax(1)
        moved = [bool((s.model(x).argmax(1) != predicted).any()) for s in randomised_models(model)]
    assert any(moved)  # the randomised models predict other classes for some pictures ...
    implicit = randomisation_similarity("saliency", model, x, None)
    explicit = randomisation_similarity("saliency", model, x, predicted)
    for s, t in zip(implicit, explicit, strict=True):  # ... yet the original's classes are explained
        assert torch.equal(s.spearman, t.spearman) and torch.equal(s.iou, t.iou)
