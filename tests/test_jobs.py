"""The command line's jobs as functions: result folder naming, resume, the store job's pieces, show;
and the torchrun helpers in one process."""

import json
import shutil
import socket
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from extremal_contours.distributed import World, join, leave, on_rank_zero
from extremal_contours.jobs import (
    ExplainJob,
    Fingerprints,
    JobError,
    image_key,
    list_saved,
    result_folders,
    safe_name,
    show_saved,
)
from extremal_contours.jobs.naming import find_result, holds_another, is_picture, saved_meta


def _picture(path, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(path)


def _save_meta(folder, meta):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "explanation.json").write_text(json.dumps({"meta": meta}))


def test_safe_names_are_never_dot_dot_or_hidden():
    assert safe_name("a b/c") == "a_b_c"
    assert safe_name(".") == "_." and safe_name("..") == "_.." and safe_name(".hidden") == "_.hidden"
    assert safe_name("") == "image" and safe_name("x-1_y.z") == "x-1_y.z"


def test_image_key_is_the_path_inside_the_outermost_folder_given(tmp_path):
    _picture(tmp_path / "top" / "sub" / "x.png", 1)
    path = tmp_path / "top" / "sub" / "x.png"
    for roots in ([tmp_path / "top", tmp_path / "top" / "sub"], [tmp_path / "top" / "sub", tmp_path / "top"]):
        assert image_key(path, roots) == "sub/x.png"
    assert image_key(path, [path]) == "x.png"  # a file given: its name
    assert image_key(path, [tmp_path / "elsewhere"]) == "x.png"


def test_result_folders_tell_apart_pictures_of_one_name(tmp_path):
    for name, seed in (("x.png", 1), ("x.jpg", 2), ("y.png", 3)):
        _picture(tmp_path / "in" / name, seed)
    (tmp_path / "in" / "z.png").write_bytes((tmp_path / "in" / "y.png").read_bytes())
    files = sorted((tmp_path / "in").iterdir())
    fingerprint = Fingerprints()
    names = result_folders(files, [tmp_path / "in"], tmp_path / "out", fingerprint)
    assert {f.name: n.as_posix() for f, n in names.items()} == {"x.jpg": "x-jpg", "x.png": "x-png", "y.png": "y", "z.png": "z"}
    assert fingerprint(tmp_path / "in" / "y.png") == fingerprint(tmp_path / "in" / "z.png")  # the bytes, not the name
    # A picture whose result already has the bare folder keeps it.
    _save_meta(tmp_path / "out" / "x", {"source_sha1": fingerprint(tmp_path / "in" / "x.jpg")})
    names = result_folders(files, [tmp_path / "in"], tmp_path / "out", fingerprint)
    assert names[tmp_path / "in" / "x.jpg"].as_posix() == "x" and names[tmp_path / "in" / "x.png"].as_posix() == "x-png"


def test_a_result_is_found_only_for_its_picture_and_job(tmp_path):
    _picture(tmp_path / "a" / "p.png", 1)
    _picture(tmp_path / "b" / "p.png", 2)
    mine, other = tmp_path / "a" / "p.png", tmp_path / "b" / "p.png"
    fingerprint = Fingerprints()
    record = {"model": "m", "settings": {"iterations": 3}}
    folder = tmp_path / "out" / "p"
    assert find_result(mine, folder, record, fingerprint) == (folder, False)  # nothing saved
    _save_meta(folder, {"job": record, "source": str(mine.resolve()), "source_sha1": fingerprint(mine)})
    meta = saved_meta(folder)
    assert is_picture(meta, mine, fingerprint) and not is_picture(meta, other, fingerprint)
    assert find_result(mine, folder, record, fingerprint) == (folder, True)
    assert find_result(mine, folder, record | {"model": "n"}, fingerprint) == (folder, False)  # another job
    # Another picture of the same name goes beside the folder, which keeps the first picture's result.
    assert holds_another(meta, other, fingerprint)
    assert find_result(other, folder, record, fingerprint) == (folder.with_name(f"p-{fingerprint(other)[:8]}"), False)
    # A saved result without the picture's fingerprint is no picture's.
    _save_meta(folder, {"job": record, "source": str(mine.resolve())})
    assert find_result(mine, folder, record, fingerprint) == (folder, False)
    # The picture moved: the folder is still its own.
    shutil.move(tmp_path / "a", tmp_path / "moved")
    _save_meta(folder, {"job": record, "source": str(mine.resolve()), "source_sha1": fingerprint(tmp_path / "moved" / "p.png")})
    assert find_result(tmp_path / "moved" / "p.png", folder, record, Fingerprints()) == (folder, True)


def test_explain_job_record_names_everything_that_makes_a_result():
    job = ExplainJob(files=[], roots=[], out=None, areas=(0.1, 0.2), target=3, seed=2, weights="random")
    record = job.record("tiny", {"iterations": 3})
    assert record == {
        "model": "tiny", "weights": "random", "target": 3, "variant": "preserve", "seed": 2,
        "sweep": False, "contours": 1, "alternatives": 1, "settings": {"iterations": 3},
    }  # fmt: skip
    assert replace(job, sweep=True).record("tiny", {})["areas"] == [0.1, 0.2]  # a sweep is one artefact of all its areas
    assert json.loads(json.dumps(record)) == record  # as saved, so a re-run compares equal


def test_show_refuses_a_missing_store_or_picture_in_one_line(tmp_path, capsys):
    with pytest.raises(JobError, match="no result store or output folder at"):
        show_saved(tmp_path / "nothing.sqlite", "a.png", tmp_path / "shown")
    from conftest import TinyNet
    from extremal_contours import ExtremalContour
    from extremal_contours.store import ResultStore

    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    result = ExtremalContour(TinyNet().eval(), iterations=2, starts=1, scan=1, progress=False).attribute(x, 0, names=["sub/a.png"])
    ResultStore(tmp_path / "explanations.sqlite").add(result)
    with pytest.raises(JobError, match=r"no saved explanation of 'b\.png'"):
        show_saved(tmp_path, "b.png", tmp_path / "shown")
    with pytest.raises(JobError, match=r"at area 0\.3"):
        show_saved(tmp_path, "a.png", tmp_path / "shown", area=0.3)
    assert show_saved(tmp_path, "a.png", tmp_path / "shown") == 0  # the bare file name of sub/a.png
    assert sorted(p.name for p in (tmp_path / "shown").iterdir()) == ["mask_a_area0.1_seed0.png", "overlay_a_area0.1_seed0.png"]
    assert list_saved(tmp_path) == 0
    assert "sub/a.png: area 0.1 target 0 seed 0 keeps" in capsys.readouterr().out


def test_show_lists_and_redraws_an_explain_folder(tmp_path, capsys):
    from conftest import TinyNet
    from extremal_contours import ExtremalContour

    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    explainer = ExtremalContour(TinyNet().eval(), iterations=2, starts=1, scan=1, progress=False)
    explainer.attribute(x, 0, areas=(0.1, 0.2), names=["one.png", "two.png"]).save(tmp_path / "out")
    assert list_saved(tmp_path / "out") == 0
    listed = capsys.readouterr().out.strip().splitlines()
    assert len(listed) == 5 and listed[-1].startswith("2 pictures, 4 explanations")
    assert show_saved(tmp_path / "out", "two", tmp_path / "shown", area=0.2) == 0
    assert sorted(p.name for p in (tmp_path / "shown").iterdir()) == ["mask_two_area0.2.png", "overlay_two_area0.2.png"]
    with pytest.raises(JobError, match="show --list lists the names"):
        show_saved(tmp_path / "out", "three.png", tmp_path / "shown")


def test_one_process_is_a_world_of_one(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    world = join()
    assert world == World() and world.leads and not world.sharded
    order = []
    assert on_rank_zero(world, lambda: order.append("work") or 7) == 7 and order == ["work"]
    leave(world)  # nothing to end


def test_a_process_group_started_elsewhere_is_left_running(monkeypatch):
    import torch.distributed as dist

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        monkeypatch.setenv("WORLD_SIZE", "2")  # as under torchrun
        world = join()
        assert (world.rank, world.size, world.started_group) == (0, 1, False)
        assert on_rank_zero(world, lambda: "merged") == "merged"
        leave(world)
        assert dist.is_initialized()  # the caller's group, not ours to end
    finally:
        dist.destroy_process_group()
