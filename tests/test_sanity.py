"""The model-parameter randomisation test (extremal_contours.sanity) on cases with known answers."""

import csv
import itertools
import json
import math

import pytest
import torch
from torch import nn

from conftest import BrightSpot, TinyNet, disc_image, write_dataset
from extremal_contours.baselines import get_explainer
from extremal_contours.benchmark import SANITY_FIELDS, merge_shards
from extremal_contours.cli import main
from extremal_contours.sanity import (
    ROOT_LAYER,
    layers_top_down,
    randomisation_similarity,
    randomised_models,
    step_plan,
)
from test_benchmark import tables

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


@pytest.mark.parametrize("name", ["tiny", "test_efficientnet"])
def test_layers_are_quantus_mprt_layers_in_its_top_down_order(name):
    from extremal_contours.models import load_model

    pytorch_model = pytest.importorskip("quantus.helpers.model.pytorch_model")
    model = TinyNet() if name == "tiny" else load_model(name, "random").model
    reference = pytorch_model.PyTorchModel(model, channel_first=True).get_random_layer_generator(order="top_down", seed=42)
    assert layers_top_down(model) == [layer for layer, _ in reference]


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
    # Each step's model is its own: the later steps do not change it.
    models = list(randomised_models(model, steps=2))
    assert torch.equal(models[0].model.features[0].weight, model.features[0].weight)
    assert not torch.equal(models[1].model.features[0].weight, model.features[0].weight)
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


# -- the benchmark's --sanity ---------------------------------------------------------------------

FAST = ["--option", "contour.iterations=4", "--option", "contour.starts=1", "--option", "contour.scan=2",
        "--option", "occlusion.window=32", "--option", "occlusion.stride=32"]  # fmt: skip
RANDOM = ["--model", "test_efficientnet", "--weights", "random", "--device", "cpu", "--quiet"]


@pytest.fixture
def pictures(tmp_path):
    return write_dataset(tmp_path / "data", 3, boxes=())


def _csv(path):
    with path.open(newline="") as handle:
        return list(csv.reader(handle))


def test_benchmark_sanity_rows_step_order_summary_and_resume(pictures, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["benchmark", "--data", str(pictures), "--methods", "saliency,contour,occlusion", *FAST, *RANDOM,
            "--areas", "0.1", "0.2", "--limit", "2", "--out", str(out), "--sanity", "--sanity-steps", "3"]  # fmt: skip
    assert main(args) == 0
    header, *body = _csv(out / "sanity.csv")
    assert header == SANITY_FIELDS == ["method", "image", "area", "step", "layer", "spearman", "iou"]
    rows = [dict(zip(header, r, strict=True)) for r in body]
    # test_efficientnet has 31 layers: 3 steps are the top layer alone, half of them, and all of them.
    steps = {(r["method"], r["image"], r["area"]): [] for r in rows}
    for r in rows:
        steps[(r["method"], r["image"], r["area"])].append((int(r["step"]), r["layer"]))
    assert set(steps) == {(m, f"{i}.png", a) for m in ("saliency", "contour", "occlusion") for i in range(2) for a in ("0.1", "0.2")}
    assert all(v == [(1, "classifier"), (16, "blocks.3.0.bn2"), (31, "conv_stem")] for v in steps.values())
    for r in rows:
        assert 0 <= float(r["iou"]) <= 1
        assert math.isnan(float(r["spearman"])) or -1 <= float(r["spearman"]) <= 1
    # Random weights are not a trained model, but the top layer alone changes the saliency map.
    assert all(float(r["spearman"]) < 0.99 for r in rows if r["method"] == "saliency" and r["step"] == "1")
    summary = tables((out / "summary.md").read_text())
    overview = summary["Model-parameter randomisation: everything randomised"]
    assert [(r["method"], r["layers"], r["images"]) for r in overview] == [("contour", "31", "2"), ("occlusion", "31", "2"), ("saliency", "31", "2")]
    assert set(overview[0]) == {"method", "layers", "images", "Spearman", "IoU at 0.1", "IoU at 0.2"}
    for method in ("contour", "occlusion", "saliency"):
        table = summary[f"Model-parameter randomisation: {method}"]
        assert [(r["step"], r["down to layer"], r["images"]) for r in table] == [
            ("1", "classifier", "2"), ("16", "blocks.3.0.bn2", "2"), ("31", "conv_stem", "2")
        ]
        for r in table:
            mean = float(r["IoU at 0.2"].split()[0])
            assert mean == pytest.approx(
                sum(float(x["iou"]) for x in rows if (x["method"], x["step"], x["area"]) == (method, r["step"], "0.2")) / 2, abs=1e-3
            )
    # Continued: nothing to run, nothing written twice.
    capsys.readouterr()
    assert main(args) == 0
    assert "2 already done, 0 to run" in capsys.readouterr().err
    assert len(_csv(out / "sanity.csv")) == len(body) + 1
    record = json.loads((out / "run.json").read_text())
    assert record["runs"][-1]["sanity"] is True and record["runs"][-1]["sanity_steps"] == 3


def test_benchmark_without_sanity_is_unchanged_and_sanity_added_later_reruns(pictures, tmp_path, capsys):
    out = tmp_path / "plain"
    args = ["benchmark", "--data", str(pictures), "--methods", "saliency", *RANDOM, "--limit", "2", "--out", str(out)]
    assert main(args) == 0
    assert not (out / "sanity.csv").exists()
    assert not any(s.startswith("Model-parameter") for s in tables((out / "summary.md").read_text()))
    per_image = (out / "per_image.csv").read_text()
    capsys.readouterr()
    assert main([*args, "--sanity", "--sanity-steps", "2"]) == 0
    assert "0 already done, 2 to run" in capsys.readouterr().err
    assert (out / "per_image.csv").read_text() == per_image  # the rows already there are not written again
    assert [(r[0], r[3]) for r in _csv(out / "sanity.csv")[1:]] == [("saliency", "1")] * 2 + [("saliency", "31")] * 2


def test_sanity_steps_usage_errors_come_before_the_model_loads(pictures, tmp_path, capsys):
    base = ["benchmark", "--data", str(pictures), "--methods", "saliency", *RANDOM, "--out", str(tmp_path / "o")]
    assert main([*base, "--sanity-steps", "3"]) == 2
    err = capsys.readouterr().err
    assert "--sanity-steps sets the steps of --sanity" in err and "random weights" not in err
    for bad in ("1", "x"):
        with pytest.raises(SystemExit) as exc:
            main([*base, "--sanity", "--sanity-steps", bad])
        assert exc.value.code == 2 and "at least 2" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_sanity_rows_of_shards_are_merged_once(tmp_path):
    line = "saliency,a.png,0.1,1,head,0.5,0.25\n"
    (tmp_path / "sanity.csv").write_text(",".join(SANITY_FIELDS) + "\n" + line)
    for rank, extra in ((0, "saliency,b.png,0.1,1,head,0.1,0.2\n"), (1, line)):
        (tmp_path / "shards" / f"rank{rank}").mkdir(parents=True)
        (tmp_path / "shards" / f"rank{rank}" / "sanity.csv").write_text(",".join(SANITY_FIELDS) + "\n" + extra)
    merge_shards(tmp_path)
    assert [r[1] for r in _csv(tmp_path / "sanity.csv")[1:]] == ["a.png", "b.png"]


def test_sanity_tables_order_steps_by_number_and_leave_out_undefined_correlations():
    from extremal_contours.benchmark import sanity_tables

    def row(image, step, layer, spearman, iou):
        return {"method": "gradcam", "image": image, "area": "0.1", "step": str(step), "layer": layer,
                "spearman": spearman, "iou": iou}  # fmt: skip

    rows = [row(i, s, f"l{s}", sp, iou) for i in ("a", "b") for s, sp, iou in ((10, "nan", "0.5"), (9, "0.5", "0.25"))]
    rows[2]["spearman"] = "0.3"  # picture b's last step has a map that is not constant
    text = sanity_tables(rows)
    summary = tables(text)
    assert [(r["step"], r["down to layer"]) for r in summary["Model-parameter randomisation: gradcam"]] == [("9", "l9"), ("10", "l10")]
    last = summary["Model-parameter randomisation: everything randomised"]
    assert last == [{"method": "gradcam", "layers": "10", "images": "2", "Spearman": "0.300 (n=1)", "IoU at 0.1": "0.500 [0.500, 0.500]"}]
