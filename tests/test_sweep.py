"""Area sweeps: nesting, importance maps, profiles, figures and the CLI."""

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import BrightSpot, TinyNet, disc_image
from extremal_contours import ExtremalContour
from extremal_contours.sweep import (
    DEFAULT_AREAS,
    importance_map,
    nesting,
    profile,
    smallest_sufficient_area,
    write_profile_csv,
)

AREAS = (0.05, 0.1, 0.2, 0.4)


def test_importance_map_counts_the_smallest_region_holding_a_pixel():
    masks = torch.zeros(1, 3, 1, 4, 4, dtype=torch.bool)
    masks[0, 0, 0, 0, 0] = True  # area 0.1 holds pixel (0, 0)
    masks[0, 1, 0, :2, :2] = True  # area 0.3 holds the top-left 2x2
    masks[0, 2, 0, :, :3] = True  # area 0.6
    got = importance_map(masks, [0.1, 0.3, 0.6])[0, 0]
    assert got[0, 0] == pytest.approx(0.9)
    assert got[1, 1] == pytest.approx(0.7)
    assert got[3, 2] == pytest.approx(0.4)
    assert got[0, 3] == 0
    # The order of the areas given does not matter.
    shuffled = importance_map(masks[:, [2, 0, 1]], [0.6, 0.1, 0.3])
    assert torch.equal(shuffled, importance_map(masks, [0.1, 0.3, 0.6]))


def test_nesting_share():
    masks = torch.zeros(1, 2, 1, 4, 4, dtype=torch.bool)
    masks[0, 0, 0, 0, :2] = True
    masks[0, 1, 0, 0, 1:] = True
    assert nesting(masks, [0.1, 0.2])[0, 0] == pytest.approx(0.5)


def test_sweep_nests_families_and_independent_areas_need_not():
    model = TinyNet(seed=0).eval()
    x = torch.rand(2, 3, 48, 56, generator=torch.Generator().manual_seed(0))
    explainer = ExtremalContour(model, iterations=24, starts=2, progress=False)
    nested = explainer.sweep(x, 0, areas=AREAS[::-1])  # given in any order, returned sorted
    assert nested.areas == AREAS
    assert nesting(nested.masks, nested.areas).mean() > 0.95
    assert torch.allclose(nested.visible_area, torch.tensor(AREAS).expand(2, -1), atol=0.01)
    assert explainer.config.nesting == 0.0 and nested.settings["nesting"] == 5.0  # the explainer is unchanged
    free = explainer.sweep(x, 0, areas=AREAS, nesting=0.0)
    assert nesting(free.masks, free.areas).mean() < nesting(nested.masks, nested.areas).mean()
    with pytest.raises(ValueError, match="distinct"):
        explainer.sweep(x, 0, areas=(0.1, 0.1))
    # Fewer families: fewer passes, still nested, and the explainer keeps its own starts.
    one = explainer.sweep(x, 0, areas=AREAS, families=1)
    assert one.cost["forward_backward"] < nested.cost["forward_backward"]
    assert one.settings["starts"] == 1 and explainer.config.starts == 2
    assert nesting(one.masks, one.areas).mean() > 0.95
    with pytest.raises(ValueError, match="families"):
        explainer.sweep(x, 0, areas=AREAS, families=0)


def test_profile_and_smallest_sufficient_area(tmp_path):
    x, _ = disc_image()
    result = ExtremalContour(BrightSpot(), iterations=16, starts=2, progress=False).sweep(x, 0, areas=AREAS)
    rows = profile(result)
    assert [r["area"] for r in rows] == list(AREAS)
    assert all(abs(r["visible_area"] - r["area"]) < 0.01 for r in rows)
    best = smallest_sufficient_area(rows, 0.9)
    assert best is not None and rows[[r["area"] for r in rows].index(best)]["preserve_ratio"] >= 0.9
    assert smallest_sufficient_area([{"area": 0.1, "preserve_ratio": 0.2}], 0.9) is None
    path = write_profile_csv(rows, tmp_path / "p.csv")
    read = list(csv.DictReader(path.open()))
    assert [float(r["area"]) for r in read] == list(AREAS)


def test_figures_are_written(tmp_path):
    from extremal_contours.figures import save_sweep

    x, _ = disc_image()
    result = ExtremalContour(BrightSpot(), iterations=8, starts=2, progress=False).sweep(x, 0, areas=AREAS, names=["disc"])
    (folder,) = save_sweep(result, tmp_path / "out")
    for name in ("importance.png", "profile.png", "profile.csv", "summary.png"):
        assert (folder / name).is_file(), name
    summary = np.asarray(Image.open(folder / "summary.png").convert("L"))
    assert summary.shape[1] > 2 * summary.shape[0] and summary.std() > 10  # a wide page, not blank


@pytest.mark.real
def test_cli_sweep(tmp_path, capsys):
    from extremal_contours import sample_image_path
    from extremal_contours.cli import main

    out = tmp_path / "sw"
    args = ["sweep", sample_image_path(), "--areas", "0.05", "0.2", "--iterations", "6", "--starts", "2", "--quiet", "--device", "cpu", "--out", str(out)]
    assert main(args) == 0
    folder = out / "chelsea"
    assert {"summary.png", "importance.png", "profile.png", "profile.csv", "explanation.json"} <= {p.name for p in folder.iterdir()}
    capsys.readouterr()
    assert main(args) == 0  # a re-run skips it
    assert "already done" in capsys.readouterr().err


def test_speed_comparisons_report_both_sides():
    from extremal_contours.speed import compare_batching, compare_sweep

    model = TinyNet(seed=1).eval()
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    explainer = ExtremalContour(model, iterations=4, starts=1, scan=2, progress=False)
    calls = []

    def attribute(xs, ts):
        calls.append(xs.shape[0])
        return explainer.attribute(xs, ts)

    out = compare_batching(attribute, x, torch.tensor([0, 1, 2]))
    assert calls == [3, 1, 1, 1] and out["images"] == 3
    out = compare_sweep(explainer, x[:1], 0, (0.1, 0.3))
    # Images through forward+backward: 2 areas x 4 steps x 1 start either way (the sweep's one family
    # holds both areas in each step's batch, the separate runs one area each).
    assert out["areas"] == 2 and out["sweep_passes"] == out["separate_passes"] == 2 * 4


@pytest.mark.device
def test_overhead_report_times_the_model_in_the_explainers_precision(device):
    from extremal_contours.speed import measure_overhead

    model = TinyNet(seed=1).eval().to(device)
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    report = measure_overhead(ExtremalContour(model, iterations=4, starts=1, scan=2, precision="bfloat16", progress=False), x, repeats=1)
    assert "precision: bfloat16" in report.text() and report.settings["precision"] == "bfloat16"
    assert report.steps == 4 and len(report.wall) == len(report.model_time) == len(report.plain_step_time) == 1
    assert report.device.startswith(device.type) and report.channels_last == (device.type == "cpu")


@pytest.mark.device
def test_time_passes_runs_the_model_in_the_precision_asked(device):
    from extremal_contours.speed import time_passes

    seen = []

    class Spy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = TinyNet(seed=1).eval()

        def forward(self, x):
            seen.append((self.net.features[0](x).dtype, x.device.type))
            return self.net(x)

    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)).to(device)
    time_passes(Spy().to(device), x, 2, True, repeats=1, autocast=torch.bfloat16)
    assert seen and set(seen) == {(torch.bfloat16, device.type)}
    seen.clear()
    time_passes(Spy().to(device), x, 2, False, repeats=1)
    assert seen and set(seen) == {(torch.float32, device.type)}


def test_the_three_speed_modes_report_their_lines(tmp_path):
    import json

    from extremal_contours import sample_image_path
    from extremal_contours.models import LoadedModel
    from extremal_contours.speed import report_batching, report_overhead, report_sweep

    loaded = LoadedModel(model=TinyNet(classes=3).eval(), name="tiny", input_size=32, mean=(0.5,) * 3, std=(0.5,) * 3, crop_pct=1.0)
    explainer = ExtremalContour(loaded.model, iterations=2, starts=1, scan=2, progress=False)
    lines = report_overhead(loaded, explainer, sample_image_path(), areas=(0.1,), repeats=1).splitlines()
    assert lines[0].startswith("device: cpu") and lines[1].startswith("steps: 2;") and len(lines) == 9
    lines = report_sweep(loaded, explainer, sample_image_path(), areas=(0.1, 0.3), families=1).splitlines()
    assert lines[0] == "device: cpu; 2 areas, one image" and lines[1].startswith("one sweep: ")
    one_area = report_sweep(loaded, explainer, sample_image_path(), areas=(0.1,), families=1).splitlines()
    assert one_area[0] == f"device: cpu; {len(DEFAULT_AREAS)} areas, one image"  # one area given: the sweep's default areas
    for i in range(3):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "annotations.json").write_text(json.dumps([{"file": f"{i}.png"} for i in range(3)]))  # no labels
    lines = report_batching(loaded, tmp_path, method="saliency", images=2, stride=1, options={}).splitlines()
    assert lines[0] == "device: cpu; method saliency; 2 images; options {'progress': False}" and lines[1].startswith("batched: ")
