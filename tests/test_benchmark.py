import csv
import dataclasses
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TinyNet, write_dataset
from extremal_contours import metrics as M
from extremal_contours.benchmark import FIELDS, BenchmarkConfig, BenchmarkMismatch, run_benchmark, speed_table
from extremal_contours.models import LoadedModel


@pytest.fixture
def dataset(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"nope")
    return write_dataset(tmp_path, 5, extra=({"file": "broken.png", "label": 0, "boxes": []},))


@pytest.fixture
def loaded():
    return LoadedModel(model=TinyNet(classes=3).eval(), name="tiny", input_size=32, mean=(0.5,) * 3, std=(0.5,) * 3, crop_pct=1.0)


def _rows(path):
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def tables(markdown):
    """The Markdown tables of a summary by section (the ``## `` heading above them): each a list of
    rows, a row a dict from column name to cell."""
    out, section, lines = {}, None, markdown.splitlines()
    for k, line in enumerate(lines):
        if line.startswith("## "):
            section = line[3:].strip()
        elif line.startswith("|") and k + 1 < len(lines) and set(lines[k + 1].replace("|", "").strip()) == {"-"}:
            header = _cells(line)
            body = []
            for row in lines[k + 2 :]:
                if not row.startswith("|"):
                    break
                cells = _cells(row)
                assert len(cells) == len(header), row
                body.append(dict(zip(header, cells, strict=True)))
            out[section] = body
    return out


def test_tables_parses_a_summary():
    text = "## A\n\nnote\n\n| m | x |\n|---|---|\n| a | 1 |\n| b | 2 |\n\n## B\n\n| y |\n|---|\n| 3 |\n"
    assert tables(text) == {"A": [{"m": "a", "x": "1"}, {"m": "b", "x": "2"}], "B": [{"y": "3"}]}


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
    # Two seeds: the contour's seed moves its starts (its default run is deterministic), as recorded.
    assert any("start_jitter=0.1" in line for line in logs)
    assert json.loads((out / "run.json").read_text())["runs"][-1]["effective_options"]["contour"]["start_jitter"] == 0.1
    assert any(float(r["iou"]) < 1 for r in _rows(out / "consistency.csv"))
    summary = tables((out / "summary.md").read_text())
    fidelity = {(r["method"], r["area"]): r for r in summary["Fidelity and cost"]}
    assert set(fidelity) == {(m, a) for m in ("contour", "saliency") for a in ("0.1", "0.2")}
    assert fidelity[("contour", "0.1")]["images"] == "5"
    consistency = summary["Run-to-run consistency"]
    assert [(r["method"], r["area"], r["images"], r["runs"]) for r in consistency] == [("contour", "0.1", "5", "2"), ("contour", "0.2", "5", "2")]
    # Every binary mask's pieces and holes are counted and tabulated: a contour's region is one piece
    # without holes (star-convex); the saliency's top pixels are at least one piece.
    assert all((r["pieces"], r["holes"]) == ("1", "0") for r in rows if r["method"] == "contour")
    assert all(int(r["pieces"]) >= 1 for r in rows)
    shapes = {(r["method"], r["area"]): r for r in summary["Shape of the binary masks"]}
    assert set(shapes) == set(fidelity) and all(r["masks"] == ("10" if m == "contour" else "5") for (m, _), r in shapes.items())
    with Image.open(out / "profile.png") as im:  # fidelity against area, per method
        assert im.size[0] > 500
    # Map metrics: one row per (method, image, seed); boxes give localisation scores in [0, 1].
    maps = _rows(out / "maps.csv")
    assert len(maps) == 5 * (2 + 1)
    for r in maps:
        assert 0 <= float(r["relevance_mass"]) <= 1 and float(r["pointing_game"]) in (0.0, 1.0)
        assert float(r["complexity"]) > 0 and r["insertion_auc"] == "nan"
    maps_table = next(rows for name, rows in summary.items() if name.startswith("Attribution maps"))
    assert [(r["method"], r["images"]) for r in maps_table] == [("contour", "5"), ("saliency", "5")]
    # Speed: the model's own time per pass, measured once, and each method's overhead over it.
    floor = json.loads((out / "speed.json").read_text())
    assert floor["input"] == [3, 32, 32]
    assert [r["method"] for r in summary["Speed"]] == ["contour", "saliency"]
    assert all(r["overhead ratio"] not in ("", "-") for r in summary["Speed"])
    # A re-run does nothing more (but tries the broken picture again); a bigger run adds only the new work.
    logs.clear()
    run_benchmark(config, loaded, progress=False, log=logs.append)
    assert len(_rows(out / "per_image.csv")) == len(rows)
    assert any("5 already done, 1 to run" in line for line in logs) and any("error: broken.png" in line for line in logs)
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
    # Known clean probabilities are reused, not recomputed: the same scores.
    reused = M.fidelity(model, x, torch.zeros(2, 1, 32, 32, dtype=torch.bool), classes, clean=empty["clean"])
    assert all(torch.equal(reused[k], empty[k]) for k in empty)


def test_benchmark_faithfulness_columns(dataset, loaded, tmp_path):
    out = tmp_path / "f"
    config = BenchmarkConfig(data=dataset, methods=["saliency"], out=out, limit=2, faithfulness=True)
    run_benchmark(config, loaded, progress=False, log=lambda m: None)
    maps = _rows(out / "maps.csv")
    assert len(maps) == 2
    for r in maps:
        assert -1 <= float(r["faithfulness_correlation"]) <= 1
        assert 0 <= float(r["insertion_auc"]) <= 1 and 0 <= float(r["deletion_auc"]) <= 1
    # Another subset size gives other correlations, and may not continue a folder made with 224.
    other = BenchmarkConfig(data=dataset, methods=["saliency"], out=tmp_path / "g", limit=2, faithfulness=True, faithfulness_subset=64)
    run_benchmark(other, loaded, progress=False, log=lambda m: None)
    assert [r["faithfulness_correlation"] for r in _rows(tmp_path / "g" / "maps.csv")] != [r["faithfulness_correlation"] for r in maps]
    with pytest.raises(BenchmarkMismatch, match="faithfulness_subset=224"):
        run_benchmark(dataclasses.replace(other, out=out), loaded, progress=False, log=lambda m: None)
    # Quantus' protocol gives other correlations too, and may not continue a folder made with blur.
    quantus = dataclasses.replace(config, out=tmp_path / "q", faithfulness_protocol="quantus")
    run_benchmark(quantus, loaded, progress=False, log=lambda m: None)
    assert [r["faithfulness_correlation"] for r in _rows(tmp_path / "q" / "maps.csv")] != [r["faithfulness_correlation"] for r in maps]
    with pytest.raises(BenchmarkMismatch, match="faithfulness_protocol='blur'"):
        run_benchmark(dataclasses.replace(quantus, out=out), loaded, progress=False, log=lambda m: None)
    # A run.json that does not record a fixed setting cannot be checked: refused.
    record = json.loads((out / "run.json").read_text())
    del record["faithfulness_protocol"]
    (out / "run.json").write_text(json.dumps(record))
    with pytest.raises(BenchmarkMismatch, match="does not record faithfulness_protocol"):
        run_benchmark(dataclasses.replace(config, out=out), loaded, progress=False, log=lambda m: None)
    # Each summary says how its subsets were replaced.
    assert "100 subsets of 224 pixels each replaced by the most blurred image" in (out / "summary.md").read_text()
    assert "100 subsets of 224 input values each set to the image's minimum" in (tmp_path / "q" / "summary.md").read_text()


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
    # The summary reports the random class's probability on the preserved image, not only the ratio.
    summary = tables((tmp_path / "a" / "summary.md").read_text())
    kept = [float(r["preserved_probability"]) for r in rows[0]]
    for r, k in zip(rows[0], kept, strict=True):
        assert k == pytest.approx(float(r["preserve_ratio"]) * float(r["clean_probability"]), rel=1e-4)
    (line,) = summary["Adversarial-artifact check (random target)"]
    assert (line["method"], line["area"], line["explanations"]) == ("saliency", "0.1", "5")
    assert line["preserved: max"] == f"{max(kept):.3f}"


def test_benchmark_folder_records_runs_and_refuses_other_targets(dataset, loaded, tmp_path):
    import json

    from extremal_contours.benchmark import BenchmarkMismatch

    out = tmp_path / "o"
    run_benchmark(BenchmarkConfig(data=dataset, methods=["saliency"], out=out, limit=1), loaded, progress=False, log=lambda m: None)
    run_benchmark(BenchmarkConfig(data=dataset, methods=["saliency"], out=out, limit=2), loaded, progress=False, log=lambda m: None)
    record = json.loads((out / "run.json").read_text())
    assert record["random_target"] is False and [r["limit"] for r in record["runs"]] == [1, 2]
    assert "torch" in record["runs"][0]["versions"]
    assert not any(name.startswith("Adversarial-artifact") for name in tables((out / "summary.md").read_text()))
    before = (out / "per_image.csv").read_text()
    with pytest.raises(BenchmarkMismatch, match="random_target"):
        run_benchmark(
            BenchmarkConfig(data=dataset, methods=["saliency"], out=out, random_target=True), loaded, progress=False, log=lambda m: None
        )
    with pytest.raises(BenchmarkMismatch, match="weights"):
        run_benchmark(
            BenchmarkConfig(data=dataset, methods=["saliency"], out=out, weights="random"), loaded, progress=False, log=lambda m: None
        )
    assert (out / "per_image.csv").read_text() == before
    # A run that fails before it starts (no such data) pins nothing.
    fresh = tmp_path / "fresh"
    with pytest.raises(FileNotFoundError):
        run_benchmark(BenchmarkConfig(data=tmp_path / "nowhere", methods=["saliency"], out=fresh), loaded, progress=False, log=lambda m: None)
    assert not (fresh / "run.json").exists()


def test_benchmark_append_survives_empty_and_half_written_files(tmp_path):
    from extremal_contours.benchmark.rows import append_rows, drop_partial_line

    path = tmp_path / "rows.csv"
    path.write_text("")  # a run killed right after creating the file
    append_rows(path, ["a", "b"], [{"a": 1, "b": 2}])
    path.write_text(path.read_text() + "3,")  # ... or in the middle of a row: cut when the next run starts
    drop_partial_line(path)
    append_rows(path, ["a", "b"], [{"a": 5, "b": 6}])
    assert _rows(path) == [{"a": "1", "b": "2"}, {"a": "5", "b": "6"}]
    with pytest.raises(BenchmarkMismatch, match="other columns"):  # never rows under another header
        append_rows(path, ["a", "c"], [{"a": 7, "c": 8}])
    assert _rows(path) == [{"a": "1", "b": "2"}, {"a": "5", "b": "6"}]


def _per_image_csv(*rows):
    """per_image.csv text with ``rows`` of (image, preserve_ratio[, stray values])."""
    filler = ",".join("0" for _ in FIELDS[5:])
    lines = [",".join(FIELDS)]
    for image, ratio, *stray in rows:
        values = dict(zip(FIELDS, ["contour", image, "1", "0.1", "0", *filler.split(",")], strict=True)) | {"preserve_ratio": ratio}
        lines.append(",".join([*values.values(), *stray]))
    return "\n".join(lines) + "\n"


def test_merge_shards_adds_each_missing_row_once(tmp_path):
    from extremal_contours.benchmark import merge_shards

    (tmp_path / "per_image.csv").write_text(_per_image_csv(("a.png", "0.5")))
    for rank, rows in enumerate([[("a.png", "0.9"), ("b.png", "0.7", "stray")], [("b.png", "0.8"), ("c.png", "0.2")]]):
        (tmp_path / "shards" / f"rank{rank}").mkdir(parents=True)
        (tmp_path / "shards" / f"rank{rank}" / "per_image.csv").write_text(_per_image_csv(*rows))
    (tmp_path / "shards" / "rank1" / "errors.csv").write_text("image,error\nbroken.png,not a picture\n")
    merge_shards(tmp_path)
    rows = _rows(tmp_path / "per_image.csv")
    assert [(r["image"], r["preserve_ratio"]) for r in rows] == [("a.png", "0.5"), ("b.png", "0.7"), ("c.png", "0.2")]
    assert (tmp_path / "per_image.csv").read_text().splitlines()[0] == ",".join(FIELDS)  # no unnamed column
    assert _rows(tmp_path / "errors.csv") == [{"image": "broken.png", "error": "not a picture"}]  # every CSV, one mechanism
    assert not any((tmp_path / "shards").iterdir())


def test_merge_shards_refuses_a_shard_of_other_columns(tmp_path):
    from extremal_contours.benchmark import merge_shards

    (tmp_path / "per_image.csv").write_text("method,image,area,seed,preserve_ratio\ncontour,a.png,0.1,0,0.5\n")
    (tmp_path / "shards" / "rank0").mkdir(parents=True)
    (tmp_path / "shards" / "rank0" / "per_image.csv").write_text(_per_image_csv(("b.png", "0.7")))
    with pytest.raises(BenchmarkMismatch, match="other columns"):
        merge_shards(tmp_path)
    assert len(_rows(tmp_path / "per_image.csv")) == 1


def test_benchmark_under_torchrun_matches_one_process(dataset, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TQDM_DISABLE="1")
    args = ["-m", "extremal_contours", "benchmark", "--data", str(dataset), "--methods", "saliency,contour",
            "--option", "contour.iterations=3", "--option", "contour.starts=1", "--batch", "2",
            "--model", "mobilenet_v3_small", "--weights", "random", "--device", "cpu", "--quiet"]  # fmt: skip
    one = subprocess.run([sys.executable, *args, "--out", str(tmp_path / "one")], env=env, capture_output=True, text=True, check=False, timeout=600)
    assert one.returncode == 1 and "1 picture(s) failed in this run" in one.stderr  # broken.png
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}"]
    two = subprocess.run([*launcher, *args, "--out", str(tmp_path / "two")], env=env, capture_output=True, text=True, check=False, timeout=600)
    assert two.returncode == 0, two.stderr[-2000:]
    a, b = _rows(tmp_path / "one" / "per_image.csv"), _rows(tmp_path / "two" / "per_image.csv")
    key = lambda r: (r["method"], r["image"], r["area"], r["seed"])  # noqa: E731
    a, b = sorted(a, key=key), sorted(b, key=key)
    assert [key(r) for r in a] == [key(r) for r in b] and len(a) == 5 * 2
    for ra, rb in zip(a, b, strict=True):
        assert float(ra["preserve_ratio"]) == pytest.approx(float(rb["preserve_ratio"]), rel=1e-3, abs=1e-4)
    assert _rows(tmp_path / "two" / "errors.csv")[0]["image"] == "broken.png"
    assert not (tmp_path / "two" / "shards").exists() or not any((tmp_path / "two" / "shards").iterdir())


def test_speed_table_divides_seconds_by_the_model_floor():
    rows = [
        {"method": "m", "image": f"{i}", "area": a, "seconds_per_image": "3.0", "forward_backward_per_image": "10",
         "forward_per_image": "2"}
        for i in range(2) for a in ("0.1", "0.2")
    ]  # fmt: skip
    floor = {"forward_backward_s": 0.1, "forward_s": 0.05, "batch": 4, "device": "cpu", "channels_last": True}
    (row,) = tables(speed_table(rows, floor))["Speed"]
    # Per image: 2 areas x (10 fwd+bwd x 0.1 s + 2 fwd x 0.05 s) = 2.2 s of model; 3.0 / 2.2 = 1.36.
    assert list(row.values()) == ["m", "2", "3.00", "20", "4", "2.20", "1.36"]
    # A method run in bfloat16 is compared with the float32 floor, and its row says so.
    (row,) = tables(speed_table(rows, floor, {"m": "bfloat16"}))["Speed"]
    assert (row["method"], row["images"], row["s / image"]) == ("m (bfloat16; ratio against the float32 floor)", "2", "3.00")


def test_benchmark_refuses_a_csv_of_other_columns(dataset, loaded, tmp_path):
    out = tmp_path / "old"
    config = BenchmarkConfig(data=dataset, methods=["saliency"], out=out, limit=2)
    run_benchmark(config, loaded, progress=False, log=lambda m: None)
    assert tables((out / "summary.md").read_text())["Shape of the binary masks"][0]["masks"] == "2"
    other = [f for f in FIELDS if f not in ("pieces", "holes")]
    rows = _rows(out / "per_image.csv")
    with (out / "per_image.csv").open("w", newline="") as handle:  # as another version wrote it
        writer = csv.DictWriter(handle, fieldnames=other, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows[:1])
    before = (out / "per_image.csv").read_text()
    config.limit = 3
    with pytest.raises(BenchmarkMismatch, match=r"per_image\.csv has other columns"):
        run_benchmark(config, loaded, progress=False, log=lambda m: None)
    assert (out / "per_image.csv").read_text() == before


def test_benchmark_scores_the_soft_masks_of_mask_methods(dataset, loaded, tmp_path):
    """Dense EP optimises a soft mask and is shown as its binary version: both preserve ratios are
    recorded, the soft one equal to scoring the method's own soft masks directly."""
    from extremal_contours.baselines import get_explainer

    out = tmp_path / "out"
    options = {"extremal_perturbation": {"iterations": 3}}
    config = BenchmarkConfig(data=dataset, methods=["extremal_perturbation", "saliency"], out=out, batch=8, options=options)
    run_benchmark(config, loaded, progress=False, log=lambda _: None)
    rows = _rows(out / "per_image.csv")
    ep = [r for r in rows if r["method"] == "extremal_perturbation"]
    assert len(ep) == 5 and all(r["soft_preserve_ratio"] == "" for r in rows if r["method"] == "saliency")

    pictures = [loaded.preprocess(Image.open(dataset / f"{i}.png").convert("RGB"), "center") for i in range(5)]
    x, classes = torch.cat(pictures), torch.tensor([i % 3 for i in range(5)])
    got = get_explainer("extremal_perturbation", loaded.model, **options["extremal_perturbation"]).attribute(x, classes)
    assert got.soft_masks is not None and not torch.equal(got.soft_masks, got.masks.float())
    soft = M.fidelity(loaded.model, x, got.soft_masks[:, 0], classes)["preserve_ratio"]
    binary = M.fidelity(loaded.model, x, got.masks[:, 0], classes)["preserve_ratio"]
    by_name = {r["image"]: r for r in ep}
    for i in range(5):
        assert float(by_name[f"{i}.png"]["soft_preserve_ratio"]) == pytest.approx(float(soft[i]), rel=1e-3)
        assert float(by_name[f"{i}.png"]["preserve_ratio"]) == pytest.approx(float(binary[i]), rel=1e-3)
    assert not torch.allclose(soft, binary)
    fidelity = {r["method"]: r for r in tables((out / "summary.md").read_text())["Fidelity and cost"]}
    assert fidelity["saliency"]["soft mask: median"] == "-"
    soft_median = float(np.median([float(r["soft_preserve_ratio"]) for r in ep]))
    assert fidelity["extremal_perturbation"]["soft mask: median"] == f"{soft_median:.3f}"


def test_continuing_after_a_cut_row_or_with_more_areas_writes_each_row_once(dataset, loaded, tmp_path):
    out = tmp_path / "c"
    config = BenchmarkConfig(data=dataset, methods=["saliency"], out=out, limit=2, areas=(0.1,))
    run_benchmark(config, loaded, progress=False, log=lambda m: None)
    text = (out / "per_image.csv").read_text()
    (out / "per_image.csv").write_text(text[: text.rindex(",0.")])  # killed while writing the last row
    run_benchmark(config, loaded, progress=False, log=lambda m: None)  # re-runs that picture
    rows = _rows(out / "per_image.csv")
    assert sorted(r["image"] for r in rows) == ["0.png", "1.png"] and all(r["preserve_ratio"] for r in rows)
    run_benchmark(dataclasses.replace(config, areas=(0.1, 0.2)), loaded, progress=False, log=lambda m: None)
    keys = [(r["image"], r["area"]) for r in _rows(out / "per_image.csv")]
    assert sorted(keys) == [("0.png", "0.1"), ("0.png", "0.2"), ("1.png", "0.1"), ("1.png", "0.2")]
    assert len(_rows(out / "maps.csv")) == 2


def test_a_label_outside_the_model_is_one_skipped_picture(dataset, loaded, tmp_path):
    entries = json.loads((dataset / "annotations.json").read_text())
    entries[1]["label"] = 1000
    (dataset / "annotations.json").write_text(json.dumps(entries))
    logs = []
    run_benchmark(BenchmarkConfig(data=dataset, methods=["saliency"], out=tmp_path / "l", limit=3), loaded, progress=False, log=logs.append)
    assert sorted(r["image"] for r in _rows(tmp_path / "l" / "per_image.csv")) == ["0.png", "2.png"]
    assert any("1.png: label 1000 is outside the model's 3 classes" in line for line in logs)


@pytest.mark.parametrize(
    "text, message",
    [
        ('[{"file": "0.png", "lab', "not valid JSON"),
        ('{"file": "0.png"}', "expected a list of entries"),
        ("[3]", "entry 0 is not an object"),
        ('[{"file": "0.png", "label": "vulture"}]', "label 'vulture' is not a class index"),
        ('[{"file": "0.png", "label": 3.7}]', "not a whole number"),
        ('[{"file": "0.png", "boxes": [10, 10, 50, 50]}]', "boxes must be a list of"),
    ],
)
def test_damaged_annotation_files_are_one_line(dataset, tmp_path, text, message, capsys):
    from extremal_contours.cli import main

    (dataset / "annotations.json").write_text(text)
    assert main(["benchmark", "--data", str(dataset), "--methods", "saliency", "--model", "test_efficientnet", "--weights", "random",
                 "--out", str(tmp_path / "o"), "-q"]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and str(dataset / "annotations.json") in err[-1]


def test_pictures_of_the_same_name_in_different_folders_are_told_apart(tmp_path):
    from extremal_contours.data import open_dataset

    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        Image.new("RGB", (40, 40)).save(tmp_path / sub / "x.png")
    entries = [{"file": "a/x.png", "label": 0}, {"file": "b/x.png", "label": 1}, {"file": "a/y.png", "label": 2}]
    (tmp_path / "annotations.json").write_text(json.dumps(entries))
    assert [s.name for s in open_dataset(tmp_path)] == ["a/x.png", "b/x.png", "y.png"]


def test_benchmark_usage_errors_come_before_the_model_loads(dataset, tmp_path, capsys):
    from extremal_contours.cli import main

    base = ["benchmark", "--data", str(dataset), "--model", "no_such_model", "--out", str(tmp_path / "o"), "-q"]
    cases = [
        (["--seeds", "0", "0"], "--seeds has repeats"),
        (["--limit", "0"], "--limit must be >= 1"),
        (["--batch", "0"], "--batch must be >= 1"),
        (["--methods", "saliency", "--option", "contour.iterations=8"], "'contour' is not among --methods"),
        (["--methods", "contour", "--option", "contour.foo=1"], "--option contour.*: "),
        (["--methods", ","], "--methods names no method"),
    ]
    for extra, message in cases:
        assert main([*base, *extra]) == 2
        assert message in capsys.readouterr().err  # not the unknown model: that would be loaded later


def test_summary_says_when_a_metric_covers_part_of_the_images_and_clips_intervals(dataset, loaded, tmp_path):
    out = tmp_path / "p"
    run_benchmark(BenchmarkConfig(data=dataset, methods=["saliency"], out=out, limit=1), loaded, progress=False, log=lambda m: None)
    config = BenchmarkConfig(data=dataset, methods=["saliency"], out=out, limit=3, faithfulness=True)
    logs = []
    run_benchmark(config, loaded, progress=False, log=logs.append)
    assert any("1 rows of maps.csv were made without --faithfulness" in li for li in logs)
    summary = tables((out / "summary.md").read_text())
    (cells,) = next(rows for name, rows in summary.items() if name.startswith("Attribution maps"))
    assert cells["method"] == "saliency" and cells["images"] == "3"
    assert cells["faithfulness correlation"].endswith("(n=2)") and "(n=" not in cells["relevance mass"]
    for name in ("relevance mass", "relevance rank", "pointing game", "sparseness", "insertion auc"):
        lo, hi = (float(v) for v in cells[name].split("[")[1].split("]")[0].split(","))
        assert 0.0 <= lo <= hi <= 1.0  # an interval stays in the metric's range


def test_a_zero_one_score_gets_an_interval_inside_zero_one(tmp_path):
    from extremal_contours.benchmark import MAP_FIELDS, summarise

    with (tmp_path / "maps.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, MAP_FIELDS, restval="nan")
        writer.writeheader()
        writer.writerows({"method": "m", "image": f"{i}", "seed": 0, "pointing_game": i % 2, "complexity": 5} for i in range(2))
    text = summarise(tmp_path, rows=[])
    (line,) = next(rows for name, rows in tables(text).items() if name.startswith("Attribution maps"))
    assert (line["method"], line["images"]) == ("m", "2")
    assert line["pointing game"] == "0.500 [0.000, 1.000]"  # not the normal approximation's [-0.480, 1.480]


def test_a_folder_without_rows_binds_no_settings(dataset, loaded, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    (out / "run.json").write_text('{"model": "another", "runs": [')  # left by a run that wrote nothing, damaged
    run_benchmark(BenchmarkConfig(data=dataset, methods=["saliency"], out=out, limit=1), loaded, progress=False, log=lambda m: None)
    assert json.loads((out / "run.json").read_text())["model"] == "tiny" and len(_rows(out / "per_image.csv")) == 1


def test_summary_names_a_contour_run_in_bfloat16(dataset, loaded, tmp_path):
    options = {"contour": {"iterations": 2, "starts": 1, "scan": 2, "precision": "bfloat16"}}
    config = BenchmarkConfig(data=dataset, methods=["contour", "saliency"], out=tmp_path / "b", limit=2, options=options)
    run_benchmark(config, loaded, progress=False, log=lambda m: None)
    speed = tables((tmp_path / "b" / "summary.md").read_text())["Speed"]
    assert [(r["method"], r["images"]) for r in speed] == [("contour (bfloat16; ratio against the float32 floor)", "2"), ("saliency", "2")]


def test_benchmark_stability_rows_table_and_resume(dataset, loaded, tmp_path):
    from extremal_contours.nuisances import NUISANCES

    out = tmp_path / "s"
    options = {"contour": {"iterations": 2, "starts": 1, "scan": 2}}
    config = BenchmarkConfig(data=dataset, methods=["contour", "saliency"], out=out, limit=2, options=options, stability=True)
    run_benchmark(config, loaded, progress=False, log=lambda m: None)
    rows = _rows(out / "stability.csv")
    keys = sorted((r["method"], r["image"], r["area"], r["nuisance"]) for r in rows)
    assert keys == sorted((m, f"{i}.png", "0.1", k) for m in ("contour", "saliency") for i in range(2) for k in NUISANCES)
    assert all(0 <= float(r["iou"]) <= 1 and 0 <= float(r["top_iou"]) <= 1 for r in rows)
    table = tables((out / "summary.md").read_text())["Stability under nuisance changes"]
    assert [(r["method"], r["area"], r["images"]) for r in table] == [("contour", "0.1", "2"), ("saliency", "0.1", "2")]
    assert set(table[0]) >= {f"{k}: IoU" for k in NUISANCES}
    # Continued: nothing to run, nothing written twice; stability added to a folder without it re-runs the pictures.
    logs = []
    run_benchmark(config, loaded, progress=False, log=logs.append)
    assert any("2 already done, 0 to run" in line for line in logs) and len(_rows(out / "stability.csv")) == len(rows)
    plain = tmp_path / "p"
    run_benchmark(dataclasses.replace(config, out=plain, stability=False), loaded, progress=False, log=lambda m: None)
    logs.clear()
    run_benchmark(dataclasses.replace(config, out=plain), loaded, progress=False, log=logs.append)
    assert any("0 already done, 2 to run" in line for line in logs)
    assert len(_rows(plain / "stability.csv")) == len(rows) and len(_rows(plain / "per_image.csv")) == 2 * 2


def test_continuing_with_more_areas_writes_each_consistency_row_once(dataset, loaded, tmp_path):
    out = tmp_path / "c"
    options = {"contour": {"iterations": 2, "starts": 1, "scan": 2}}
    config = BenchmarkConfig(data=dataset, methods=["contour"], out=out, limit=2, seeds=(0, 1), options=options)
    run_benchmark(config, loaded, progress=False, log=lambda m: None)
    first = _rows(out / "consistency.csv")
    run_benchmark(dataclasses.replace(config, areas=(0.1, 0.2)), loaded, progress=False, log=lambda m: None)
    rows = _rows(out / "consistency.csv")
    assert sorted((r["image"], r["area"]) for r in rows) == [(f"{i}.png", a) for i in range(2) for a in ("0.1", "0.2")]
    assert rows[:2] == first  # the first run's rows are kept
    assert [r["images"] for r in tables((out / "summary.md").read_text())["Run-to-run consistency"]] == ["2", "2"]


def test_benchmark_draws_a_small_overlay_per_method_picture_and_area(dataset, loaded, tmp_path):
    from extremal_contours.benchmark import OVERLAY_SIDE, overlay_file

    out = tmp_path / "out"
    config = BenchmarkConfig(data=dataset, methods=["saliency", "gradcam"], out=out, areas=(0.1, 0.3), seeds=(0, 1), batch=2)
    run_benchmark(config, loaded, progress=False, log=lambda m: None)
    files = sorted((out / "overlays").rglob("*"))
    expected = {overlay_file(out, m, f"{i}.png", a) for m in ("saliency", "gradcam") for i in range(5) for a in (0.1, 0.3)}
    assert {f for f in files if f.is_file()} == expected  # the first seed's; the broken picture has none
    drawn = {}
    for method in ("saliency", "gradcam"):
        with Image.open(overlay_file(out, method, "3.png", 0.3)) as im:
            assert im.size == (32, 32) and im.mode == "P"  # the model's input (32 px), a palette PNG
            drawn[method] = np.asarray(im.convert("RGB")).astype(int)
        outline = (np.abs(drawn[method] - (230, 159, 0)).max(2) < 16).mean()  # the mask's outline, in its colour
        assert 0 < outline < 0.9
    assert (drawn["saliency"] != drawn["gradcam"]).any()  # each method's own mask
    # Names with folders keep them, made safe; the longest side is at most OVERLAY_SIDE.
    assert overlay_file(out, "a b", "x/y.png", 0.1) == out / "overlays" / "a_b" / "x" / "y.png_area0.1.png"
    assert overlay_file(out, "m", "/abs/p.png", 0.25) == out / "overlays" / "m" / "abs" / "p.png_area0.25.png"
    from extremal_contours.benchmark.overlays import mask_overlay

    mask = np.zeros((300, 400), bool)
    mask[100:200, 100:250] = True
    drawn = np.asarray(mask_overlay(np.full((300, 400, 3), 200, np.uint8), mask))
    assert drawn.shape == (OVERLAY_SIDE * 3 // 4, OVERLAY_SIDE, 3)
    assert (drawn[5, 5] == 90).all() and not (drawn[96, 96] == 90).all()  # 0.45 x 200 outside; tinted inside
