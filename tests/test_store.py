"""The result store: rows, redraw, resume after a kill, and sharded runs with torchrun (gloo)."""

import os
import socket
import sqlite3
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TinyNet
from extremal_contours import ExtremalContour
from extremal_contours.cli import main
from extremal_contours.store import COLUMNS, KEY, ResultStore, load_results, merge, redraw, shard_path

FAST = ["--model", "mobilenet_v3_small", "--weights", "random", "--iterations", "3", "--starts", "1", "--quiet", "--device", "cpu"]


@pytest.fixture
def pictures(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (40, 52, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    (folder / "bad.png").write_bytes(b"not a picture")
    return folder


def test_rows_round_trip_and_redraw(tmp_path):
    x = torch.rand(2, 3, 40, 48, generator=torch.Generator().manual_seed(0))
    result = ExtremalContour(TinyNet().eval(), iterations=4, starts=1, scan=2, progress=False).attribute(x, 1, areas=(0.1, 0.3), names=["a", "b"])
    store = ResultStore(tmp_path / "r.sqlite")
    assert store.add(result) == 4
    assert store.add(result) == 4 and len(store) == 4  # the same rows again: replaced, not duplicated
    rows = load_results(tmp_path / "r.sqlite")
    assert [(r["image"], r["area"]) for r in rows] == [("a", 0.1), ("a", 0.3), ("b", 0.1), ("b", 0.3)]
    assert rows[0]["settings"]["iterations"] == 4 and "torch" in rows[0]["versions"]
    for r in rows:
        i, j = ["a", "b"].index(r["image"]), [0.1, 0.3].index(r["area"])
        disagree = (redraw(r) ^ result.masks[i, j, 0]).float().mean()
        assert disagree < 0.002  # redrawn from the stored numbers alone
    assert load_results(tmp_path / "r.sqlite", image="b")[0]["image"] == "b"


def test_merge_keeps_each_row_once(tmp_path):
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    result = ExtremalContour(TinyNet().eval(), iterations=2, starts=1, scan=1, progress=False).attribute(x, 0, names=["a"])
    main_file = tmp_path / "explanations.sqlite"
    ResultStore(shard_path(main_file, 0)).add(result)
    ResultStore(shard_path(main_file, 1)).add(result)  # a row stored twice by two runs
    assert len(load_results(main_file)) == 1  # read through the shards before the merge
    assert merge(main_file) == 1
    assert not any((tmp_path / "shards").iterdir())


def _keys(path):
    with sqlite3.connect(path) as con:
        return con.execute(f"SELECT {', '.join(KEY)} FROM explanations").fetchall()


def test_killed_run_resumes_without_gaps_or_duplicates(pictures, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    calls = {"n": 0}
    original = ExtremalContour.attribute

    def dies_on_the_third(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the run
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ExtremalContour, "attribute", dies_on_the_third)
    assert main(["explain", str(pictures), "--store", "--out", str(out), "--area", "0.1", "0.2", *FAST]) == 130
    before = _keys(out / "explanations.sqlite")
    assert len(before) == 2 * 2  # two pictures done, two areas each
    monkeypatch.setattr(ExtremalContour, "attribute", original)
    assert main(["explain", str(pictures), "--store", "--out", str(out), "--area", "0.1", "0.2", *FAST]) == 1  # bad.png
    after = _keys(out / "explanations.sqlite")
    assert len(after) == len(set(after)) == 4 * 2
    assert set(before) <= set(after)
    assert "bad.png" in capsys.readouterr().err
    # A third run finds everything stored and skips the known bad picture.
    assert main(["explain", str(pictures), "--store", "--out", str(out), "--area", "0.1", "0.2", *FAST]) == 0
    err = capsys.readouterr().err
    assert "skipped, failed before" in err and "5 pictures, 4 already stored, 1 failed before" in err
    assert main(["show", str(out), "--image", "2.png", "--area", "0.2", "--out", str(tmp_path / "shown")]) == 0
    assert (tmp_path / "shown" / "overlay_2_area0.2_seed0.png").is_file()


def test_two_processes_with_torchrun_give_the_same_rows_as_one(pictures, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    one, two = tmp_path / "one", tmp_path / "two"
    args = ["-m", "extremal_contours", "explain", str(pictures), "--store", *FAST]
    subprocess.run([sys.executable, *args, "--out", str(one)], env=env, capture_output=True, check=False, timeout=600)
    with socket.socket() as sock:  # a free port: tests running side by side do not meet
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    launched = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}", *args, "--out", str(two)],
        env=env, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert "merged 2 shards" in launched.stderr, launched.stderr[-2000:]
    a, b = load_results(one / "explanations.sqlite"), load_results(two / "explanations.sqlite")
    assert [r["image"] for r in a] == [r["image"] for r in b] == ["0.png", "1.png", "2.png", "3.png"]
    for ra, rb in zip(a, b, strict=True):
        assert ra["settings_key"] == rb["settings_key"]
        np.testing.assert_allclose(ra["coeffs"], rb["coeffs"], atol=1e-5)
        assert ra["centre_x"] == pytest.approx(rb["centre_x"], abs=1e-5)
    assert not list((two / "shards").iterdir())


def test_a_damaged_store_is_one_line(pictures, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "explanations.sqlite").write_bytes(b"this is not a database" * 100)
    assert main(["explain", str(pictures / "0.png"), "--store", "--out", str(out), *FAST]) == 1
    assert main(["show", str(out), "--image", "0.png"]) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 2 and all(f"store under {out} is damaged or not a result store" in line for line in lines)


def test_a_store_of_other_columns_is_refused_in_one_line(pictures, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    with sqlite3.connect(out / "explanations.sqlite") as con:  # as another version wrote it: a column fewer
        con.execute(f"CREATE TABLE explanations ({', '.join(c for c in COLUMNS if c != 'parts')})")
    assert main(["explain", str(pictures / "0.png"), "--store", "--out", str(out), *FAST]) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "has other columns than this version writes" in lines[0]
