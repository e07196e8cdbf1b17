"""Writing a folder atomically: the old folder or the whole new one at every moment, never none."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from extremal_contours import folders as F

MARK = "explanation.json"


def writer(text: str, fail_after: int | None = None):
    """A ``fill`` writing the marker and two files, raising after ``fail_after`` of them."""

    def fill(folder: Path) -> None:
        for k, name in enumerate((MARK, "a.txt", "b.txt")):
            if fail_after is not None and k == fail_after:
                raise OSError("disk full")
            (folder / name).write_text(f"{text} {name}")

    return fill


def contents(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in folder.iterdir()}


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def exchange_works(tmp_path: Path) -> bool:
    a, b = tmp_path / "probe-a", tmp_path / "probe-b"
    a.mkdir(), b.mkdir()
    try:
        return F.exchange(a, b)
    finally:
        a.rmdir(), b.rmdir()


def test_exchange_swaps_two_folders_in_one_step(tmp_path):
    if not exchange_works(tmp_path):
        pytest.skip("no renameat2(RENAME_EXCHANGE) here; the fallback is tested below")
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x").write_text("x"), (tmp_path / "b" / "y").write_text("y")
    assert F.exchange(tmp_path / "a", tmp_path / "b")
    assert contents(tmp_path / "a") == {"y": "y"} and contents(tmp_path / "b") == {"x": "x"}


def test_replacing_a_folder_never_leaves_the_target_missing(tmp_path, monkeypatch):
    if not exchange_works(tmp_path):
        pytest.skip("no renameat2(RENAME_EXCHANGE) here")
    target = F.write_folder(tmp_path / "out", writer("old"), MARK)
    renames = []
    real_rename = os.rename

    def watched(src, dst):
        renames.append((Path(src), Path(dst)))
        return real_rename(src, dst)

    monkeypatch.setattr(F.os, "rename", watched)
    F.write_folder(target, writer("new"), MARK)
    assert not [r for r in renames if r[0] == target]  # the old folder was never moved away first
    assert contents(target) == {MARK: f"new {MARK}", "a.txt": "new a.txt", "b.txt": "new b.txt"}
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("fail_after", [0, 1, 2])
def test_a_failure_midway_leaves_the_old_folder_intact(tmp_path, fail_after):
    target = F.write_folder(tmp_path / "out", writer("old"), MARK)
    before = contents(target)
    with pytest.raises(OSError, match="disk full"):
        F.write_folder(target, writer("new", fail_after), MARK)
    assert contents(target) == before and leftovers(tmp_path) == []
    with pytest.raises(OSError, match="disk full"):
        F.write_folder(tmp_path / "fresh", writer("new", fail_after), MARK)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no half-written folder, no staging


def test_without_exchange_the_fallback_replaces_and_puts_the_old_folder_back_on_failure(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    with monkeypatch.context() as m:
        m.setattr(F, "_renameat2", lambda: None)  # a C library without renameat2
        assert not F.exchange(tmp_path / "a", tmp_path / "b")
    (tmp_path / "a").rmdir(), (tmp_path / "b").rmdir()
    monkeypatch.setattr(F, "exchange", lambda a, b: False)
    target = F.write_folder(tmp_path / "out", writer("old"), MARK)
    F.write_folder(target, writer("new"), MARK)
    assert contents(target)["a.txt"] == "new a.txt" and leftovers(tmp_path) == []
    real_rename = os.rename

    def second_fails(src, dst):
        if Path(src).name.startswith(".out.") and "old-" not in Path(src).name and Path(dst) == target:
            raise OSError("the new folder cannot be moved in")
        return real_rename(src, dst)

    monkeypatch.setattr(F.os, "rename", second_fails)
    with pytest.raises(OSError, match="cannot be moved in"):
        F.write_folder(target, writer("newer"), MARK)
    assert contents(target)["a.txt"] == "new a.txt" and leftovers(tmp_path) == []


def test_only_a_folder_of_saved_results_is_replaced(tmp_path):
    (tmp_path / "empty").mkdir()
    assert F.replaceable(tmp_path / "empty", MARK)
    (tmp_path / "nested" / "one").mkdir(parents=True)
    (tmp_path / "nested" / "one" / MARK).write_text("{}")
    assert F.replaceable(tmp_path / "nested", MARK)
    (tmp_path / "nested" / "photo.jpg").write_bytes(b"user data")
    assert not F.replaceable(tmp_path / "nested", MARK)
    with pytest.raises(ValueError, match="holds other files than a saved explanation"):
        F.write_folder(tmp_path / "nested", writer("new"), MARK)
    assert (tmp_path / "nested" / "photo.jpg").read_bytes() == b"user data"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        F.write_folder(tmp_path / "file", writer("new"), MARK)
    with pytest.raises(ValueError, match="is a file, not a folder"):
        F.write_folder(tmp_path / "file" / "sub", writer("new"), MARK)
