import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TinyNet
from extremal_contours import metrics as M
from extremal_contours.benchmark import BenchmarkConfig, run_benchmark
from extremal_contours.models import LoadedModel


@pytest.fixture
def dataset(tmp_path):
    rng = np.random.default_rng(0)
    entries = []
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
        entries.append({"file": f"{i}.png", "label": i % 3, "boxes": [[5, 5, 30, 30]]})
    (tmp_path / "broken.png").write_bytes(b"nope")
    entries.append({"file": "broken.png", "label": 0, "boxes": []})
    (tmp_path / "annotations.json").write_text(json.dumps(entries))
    return tmp_path


@pytest.fixture
def loaded():
    return LoadedModel(model=TinyNet(classes=3).eval(), name="tiny", input_size=32, mean=(0.5,) * 3, std=(0.5,) * 3, crop_pct=1.0)


def _rows(path):
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_benchmark_rows_summary_consistency_and_resume(dataset, loaded, tmp_path):
    out = tmp_path / "out"
    config = BenchmarkConfig(
        data=dataset,
        methods=["contour", "saliency"],
        out=out,
        areas=(0.1, 0.2),
        seeds=(0, 1),
        batch=2,
        options={"contour": {"iterations": 4, "starts": 1, "scan": 2}},
    )
    logs = []
    run_benchmark(config, loaded, progress=False, log=logs.append)
    rows = _rows(out / "per_image.csv")
    # 5 readable images x (contour: 2 areas x 2 seeds + saliency: 2 areas x 1 seed)
    assert len(rows) == 5 * (4 + 2)
    assert {r["image"] for r in rows} == {f"{i}.png" for i in range(5)}
    assert all(abs(float(r["visible_area"]) - float(r["area"])) < 0.02 for r in rows)
    assert _rows(out / "errors.csv")[0]["image"] == "broken.png"
    assert len(_rows(out / "consistency.csv")) == 5 * 2  # contour only: 2 areas
    summary = (out / "summary.md").read_text()
    assert "| contour | 0.1 | 5 |" in summary and "Run-to-run consistency" in summary
    # Map metrics: one row per (method, image, seed); boxes give localisation scores in [0, 1].
    maps = _rows(out / "maps.csv")
    assert len(maps) == 5 * (2 + 1)
    for r in maps:
        assert 0 <= float(r["relevance_mass"]) <= 1 and float(r["pointing_game"]) in (0.0, 1.0)
        assert float(r["complexity"]) > 0 and r["insertion_auc"] == "nan"
    assert "Attribution maps" in summary
    # A re-run does nothing more; a bigger run adds only the new work.
    run_benchmark(config, loaded, progress=False, log=logs.append)
    assert len(_rows(out / "per_image.csv")) == len(rows)
    assert "0 to run" in logs[-1]
    config.methods = ["contour", "saliency", "gradcam"]
    run_benchmark(config, loaded, progress=False, log=logs.append)
    assert len(_rows(out / "per_image.csv")) == len(rows) + 5 * 2


def test_top_fraction_and_iou():
    maps = torch.arange(20.0).view(1, 1, 4, 5)
    mask = M.top_fraction_mask(maps, 0.25)
    assert mask.sum() == 5 and mask[0, 0, 3].all()
    a = torch.zeros(2, 10, dtype=torch.bool)
    b = torch.zeros(2, 10, dtype=torch.bool)
    a[0, :4], b[0, 2:6] = True, True
    torch.testing.assert_close(M.iou(a, b), torch.tensor([2 / 6, 1.0]))
    runs = torch.stack([a, b, a])
    torch.testing.assert_close(M.mean_pairwise_iou(runs), torch.tensor([(2 / 6 + 1 + 2 / 6) / 3, 1.0]))


def test_fidelity_of_full_and_empty_masks():
    model = TinyNet().eval()
    x = torch.rand(2, 3, 32, 32)
    classes = torch.tensor([0, 1])
    full = M.fidelity(model, x, torch.ones(2, 1, 32, 32, dtype=torch.bool), classes)
    torch.testing.assert_close(full["preserve_ratio"], torch.ones(2))
    empty = M.fidelity(model, x, torch.zeros(2, 1, 32, 32, dtype=torch.bool), classes)
    torch.testing.assert_close(empty["delete_drop"], torch.zeros(2), atol=1e-6, rtol=0)


def test_benchmark_faithfulness_columns(dataset, loaded, tmp_path):
    out = tmp_path / "f"
    config = BenchmarkConfig(data=dataset, methods=["saliency"], out=out, limit=2, faithfulness=True)
    run_benchmark(config, loaded, progress=False, log=lambda m: None)
    maps = _rows(out / "maps.csv")
    assert len(maps) == 2
    for r in maps:
        assert -1 <= float(r["faithfulness_correlation"]) <= 1
        assert 0 <= float(r["insertion_auc"]) <= 1 and 0 <= float(r["deletion_auc"]) <= 1


def test_random_targets_are_never_the_prediction_and_repeat(dataset, loaded, tmp_path):
    rows = []
    for run in ("a", "b"):
        out = tmp_path / run
        config = BenchmarkConfig(data=dataset, methods=["saliency"], out=out, random_target=True)
        run_benchmark(config, loaded, progress=False, log=lambda m: None)
        rows.append(_rows(out / "per_image.csv"))
    assert [r["label"] for r in rows[0]] == [r["label"] for r in rows[1]]
    predicted = {}
    for r in rows[0]:
        x = torch.from_numpy(np.asarray(Image.open(dataset / r["image"]).convert("RGB").resize((32, 32)), dtype=np.float32))
        predicted[r["image"]] = int(loaded.model((x.permute(2, 0, 1)[None] / 255 - 0.5) / 0.5).argmax(1))
    assert all(int(r["label"]) != predicted[r["image"]] for r in rows[0])
