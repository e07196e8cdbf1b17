import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from matplotlib.path import Path as MplPath
from PIL import Image

from extremal_contours import sample_image_path
from extremal_contours.cli import main

QUICK = ["--iterations", "8", "--starts", "2", "--quiet", "--device", "cpu"]


def test_usage_errors_exit_2_with_one_line(capsys, tmp_path):
    assert main(["explain", str(tmp_path / "missing-folder"), "--out", str(tmp_path / "o"), *QUICK]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: no such file or folder") and "missing-folder" in err[-1]
    (tmp_path / "empty").mkdir()
    assert main(["explain", str(tmp_path / "empty"), *QUICK]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: no pictures found")
    assert main(["explain", sample_image_path(), "--model", "resnet50", *QUICK]) == 2
    assert "--weights PATH" in capsys.readouterr().err
    assert main(["explain", sample_image_path(), *QUICK[:-2], "--device", "tpu"]) == 2
    assert "unknown device" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["explain", "--variant", "keep"])
    assert exc.value.code == 2


@pytest.mark.real
def test_explain_folder_skips_bad_files_and_resumes(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(sample_image_path(), folder / "cat.jpg")
    Image.open(sample_image_path()).convert("L").save(folder / "grey.png")
    (folder / "broken.jpg").write_bytes(Image.open(sample_image_path()).tobytes()[:100])
    out = tmp_path / "out"
    code = main(["explain", str(folder), "--out", str(out), "--target", "Egyptian cat", *QUICK])
    captured = capsys.readouterr()
    assert code == 1  # one failure, reported, the others done
    assert "error:" in captured.err and "broken.jpg" in captured.err
    assert "grey.png: note: grayscale converted to RGB" in captured.err
    assert {p.name for p in out.iterdir()} == {"cat", "grey"}
    lines = [line for line in captured.out.splitlines() if line.startswith("cat.jpg")]
    assert lines and "Egyptian cat (285)" in lines[0] and "area 0.1 keeps" in lines[0] and "of the class" in lines[0]
    saved = out / "cat" / "area0.1"
    record = json.loads((saved / "explanation.json").read_text())
    assert record["meta"]["job"]["model"] == "efficientnet_lite0"
    assert (saved / "overlay_area0.1.png").is_file()
    with Image.open(saved / "overlay_area0.1.png") as im:
        assert im.size == Image.open(sample_image_path()).size  # drawn on the original picture

    # A re-run skips what is done; other settings are refused (nothing is replaced) unless forced.
    stamp = (saved / "explanation.json").stat().st_mtime_ns
    code = main(["explain", str(folder / "cat.jpg"), "--out", str(out), "--target", "285", *QUICK])
    assert code == 0 and "already done" in capsys.readouterr().err
    assert (saved / "explanation.json").stat().st_mtime_ns == stamp
    code = main(["explain", str(folder / "cat.jpg"), "--out", str(out), "--target", "285", "--seed", "1", *QUICK])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "seed 0" in err[0] and "use another --out to keep both, or --force" in err[0]
    assert (saved / "explanation.json").stat().st_mtime_ns == stamp
    main(["explain", str(folder / "cat.jpg"), "--out", str(out), "--target", "285", "--seed", "1", "--force", *QUICK])
    assert (saved / "explanation.json").stat().st_mtime_ns != stamp


@pytest.mark.real
def test_bad_target_names(capsys):
    assert main(["explain", sample_image_path(), "--target", "catt", *QUICK]) == 2
    assert "not a class name" in capsys.readouterr().err
    assert main(["explain", sample_image_path(), "--target", "1000", *QUICK]) == 2
    assert "outside the model's 1000 classes" in capsys.readouterr().err


@pytest.mark.real
def test_sample_default_and_several_areas(tmp_path, capsys):
    code = main(["explain", "--out", str(tmp_path), "--area", "0.05", "0.2", *QUICK])
    assert code == 0
    for area in (0.05, 0.2):
        (entry,) = json.loads((tmp_path / "chelsea" / f"area{area:g}" / "explanation.json").read_text())["contours"]
        assert entry["area"] == area and abs(entry["visible_area"] - area) < 0.01
    mask = np.array(Image.open(tmp_path / "chelsea" / "area0.2" / "mask_area0.2.png")) > 0
    assert abs(mask.mean() - 0.2) < 0.01


@pytest.mark.real
def test_explain_two_contours_and_bad_counts(tmp_path, capsys):
    code = main(["explain", "--out", str(tmp_path), "--area", "0.2", "--contours", "2", *QUICK])
    assert code == 0
    assert "(2 contours)" in capsys.readouterr().out
    record = json.loads((tmp_path / "chelsea" / "area0.2" / "explanation.json").read_text())
    (entry,) = record["contours"]
    assert len(entry["parts"]) == 2 and abs(entry["visible_area"] - 0.2) < 0.01
    assert record["settings"]["contours"] == 2
    geometry = json.loads((tmp_path / "chelsea" / "area0.2" / "contours.geojson").read_text())["features"][0]["geometry"]
    first, second = (MplPath(part["polygon_px"]) for part in entry["parts"])
    # Two polygons, or one outline of their union where they overlap (Simple Features).
    assert geometry["type"] == ("Polygon" if first.intersects_path(second, filled=True) else "MultiPolygon")
    for bad in ("0", "many", "9"):
        with pytest.raises(SystemExit) as exc:
            main(["explain", "--contours", bad, *QUICK])
        assert exc.value.code == 2
        assert "expected a count from 1 to 3 or 'auto'" in capsys.readouterr().err


@pytest.mark.real
def test_benchmark_folder_refuses_another_target_mode(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(sample_image_path(), data / "cat.jpg")
    (data / "annotations.json").write_text(json.dumps([{"file": "cat.jpg", "label": 285, "boxes": []}]))
    out = str(tmp_path / "bench")
    assert main(["benchmark", "--data", str(data), "--methods", "saliency", "--out", out, "--quiet"]) == 0
    capsys.readouterr()
    assert main(["benchmark", "--data", str(data), "--methods", "saliency", "--out", out, "--random-target", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "random_target=False" in err[0] and "--out" in err[0]


RANDOM = ["--model", "test_efficientnet", "--weights", "random", "--iterations", "6", "--starts", "2", "--quiet", "--device", "cpu"]


def _picture(path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format={".jpg": "JPEG", ".gif": "GIF"}.get(path.suffix, "PNG"))


def test_result_folders_follow_the_pictures_not_their_order(tmp_path, capsys):
    folder, out = tmp_path / "in", tmp_path / "out"
    _picture(folder / "sub1" / "x.png", 1)
    _picture(folder / "sub2" / "x.jpg", 2)
    _picture(folder / "sub2" / "x.png", 3)
    _picture(folder / "sub1.png", 5)  # its folder would hold sub1/x's
    _picture(folder / "..png", 6)  # its name alone would be the output folder itself
    assert main(["explain", str(folder), "--out", str(out), *RANDOM]) == 0
    made = {p.parent.parent.relative_to(out).as_posix() for p in out.rglob("explanation.json")}
    assert made == {"sub1/x", "sub2/x-jpg", "sub2/x-png", "sub1-png", "_."}
    capsys.readouterr()
    # A new picture that sorts first takes nobody's folder; a new picture sharing a done picture's
    # name leaves it its folder; the folders given in another order name nothing differently.
    _picture(folder / "sub0" / "x.gif", 4)
    _picture(folder / "sub1" / "x.jpg", 7)
    assert main(["explain", str(folder / "sub2"), str(folder), "--out", str(out), *RANDOM]) == 0
    err = capsys.readouterr().err
    assert err.count(": already done") == 5 and "2 explained, 5 already done" in err
    made = {p.parent.parent.relative_to(out).as_posix() for p in out.rglob("explanation.json")}
    assert made == {"sub1/x", "sub1/x-jpg", "sub0/x", "sub2/x-jpg", "sub2/x-png", "sub1-png", "_."}
    sources = {json.loads(p.read_text())["meta"]["source"] for p in out.rglob("explanation.json")}
    assert len(sources) == 7


def test_moved_pictures_are_still_done(tmp_path, capsys):
    _picture(tmp_path / "a" / "pic.png", 1)
    out = tmp_path / "out"
    assert main(["explain", str(tmp_path / "a"), "--out", str(out), *RANDOM]) == 0
    shutil.move(tmp_path / "a", tmp_path / "moved")
    capsys.readouterr()
    assert main(["explain", str(tmp_path / "moved"), "--out", str(out), *RANDOM]) == 0
    assert "pic.png: already done" in capsys.readouterr().err
    # The same path with new pixels is a new picture: explained again, in the same folder.
    _picture(tmp_path / "moved" / "pic.png", 2)
    assert main(["explain", str(tmp_path / "moved"), "--out", str(out), *RANDOM]) == 0
    assert "already done" not in capsys.readouterr().err and [p.name for p in out.iterdir()] == ["pic"]


def test_same_file_name_from_elsewhere_is_not_taken_for_done(tmp_path, capsys):
    out = tmp_path / "out"
    _picture(tmp_path / "a" / "pic.png", 1)
    _picture(tmp_path / "b" / "pic.png", 2)
    assert main(["explain", str(tmp_path / "a" / "pic.png"), "--out", str(out), *RANDOM]) == 0
    first = (out / "pic" / "area0.1" / "explanation.json").read_text()
    assert main(["explain", str(tmp_path / "b" / "pic.png"), "--out", str(out), *RANDOM]) == 0
    assert "already done" not in capsys.readouterr().err
    assert (out / "pic" / "area0.1" / "explanation.json").read_text() == first  # the first picture's result is kept
    other = [p for p in out.iterdir() if p.name.startswith("pic-")]
    record = json.loads((other[0] / "area0.1" / "explanation.json").read_text())
    assert len(other) == 1 and record["meta"]["source"].endswith("b/pic.png")


@pytest.mark.parametrize("inside", ["explained", "."])
def test_output_inside_or_equal_to_the_input_folder_is_not_explained(tmp_path, capsys, inside):
    folder = tmp_path / "photos"
    _picture(folder / "one.png", 1)
    out = folder / inside
    args = ["explain", str(folder), "--out", str(out), *RANDOM]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 0
    assert "one.png: already done" in capsys.readouterr().err  # and nothing of its own output is explained
    assert [p.parent.parent.name for p in out.rglob("explanation.json")] == ["one"]


def test_out_file_and_duplicate_areas_are_usage_errors(tmp_path, capsys):
    _picture(tmp_path / "p.png", 1)
    (tmp_path / "afile.txt").write_text("x")
    assert main(["explain", str(tmp_path / "p.png"), "--out", str(tmp_path / "afile.txt"), *RANDOM]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert main(["explain", str(tmp_path / "p.png"), "--area", "0.1", "0.1", "--out", str(tmp_path / "o"), *RANDOM]) == 2
    assert "must be distinct" in capsys.readouterr().err
    assert main(["sweep", str(tmp_path / "p.png"), "--families", "0", "--out", str(tmp_path / "o"), *RANDOM]) == 2
    assert "--families must be >= 1" in capsys.readouterr().err
    assert main(["explain", str(tmp_path / "p.png"), "--batch-size", "1", "--out", str(tmp_path / "o"), *RANDOM]) == 2
    assert "--batch-size must be >= 2" in capsys.readouterr().err
    assert main(["speed", "--area", "0.1", "0.1", *RANDOM]) == 2
    assert "--area values must be distinct" in capsys.readouterr().err
    assert main(["speed", "--batch-size", "1", *RANDOM]) == 2
    err = capsys.readouterr().err
    assert "--batch-size must be >= 2" in err and "random weights" not in err  # refused before the model loads
    assert main(["speed", "--compare", "batching", "--data", str(tmp_path), "--method", "saliency", "--precision", "bfloat16", *RANDOM]) == 2
    err = capsys.readouterr().err
    assert "--precision is an option of the contour methods, not of saliency" in err and "random weights" not in err
    assert main(["explain", str(tmp_path / "p.png"), "--num-classes", "10", "--out", str(tmp_path / "o"), *RANDOM[:2], *RANDOM[4:]]) == 2
    assert "--num-classes describes the head of --weights" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_save_failure_skips_the_picture_and_the_batch_goes_on(tmp_path, capsys, monkeypatch):
    from extremal_contours.result import ContourResult

    folder, out = tmp_path / "in", tmp_path / "out"
    _picture(folder / "a.png", 1)
    _picture(folder / "b.png", 2)
    real = ContourResult.save

    def failing(self, directory, image=None):
        if Path(directory).parent.name == "a":
            raise OSError(28, "No space left on device")
        return real(self, directory, image=image)

    monkeypatch.setattr(ContourResult, "save", failing)
    assert main(["explain", str(folder), "--out", str(out), *RANDOM]) == 1
    err = capsys.readouterr().err
    assert "a.png: [Errno 28] No space left on device" in err and "1 explained, 0 already done, 1 failed" in err
    assert (out / "b" / "area0.1" / "explanation.json").is_file()


@pytest.mark.real
def test_class_names_exact_match_first_then_ambiguity_is_an_error(capsys):
    from extremal_contours.cli import _target
    from extremal_contours.models import load_model

    loaded = load_model("efficientnet_lite0")
    assert loaded.class_names[264] == "Cardigan" and loaded.class_names[474] == "cardigan"
    assert _target("cardigan", loaded) == 474 and _target("Cardigan", loaded) == 264
    with pytest.raises(Exception, match=r"names several classes: 264 .*474"):
        _target("CARDIGAN", loaded)


def test_precision_option_is_recorded_and_counts_as_a_setting(tmp_path, capsys):
    _picture(tmp_path / "p.png", 3)
    out = tmp_path / "o"
    saved = out / "p" / "area0.1" / "explanation.json"
    assert main(["explain", str(tmp_path / "p.png"), "--precision", "bfloat16", "--out", str(out), *RANDOM]) == 0
    record = json.loads(saved.read_text())
    assert record["settings"]["precision"] == "bfloat16"
    capsys.readouterr()
    assert main(["explain", str(tmp_path / "p.png"), "--out", str(out), *RANDOM]) == 2  # float32: another job, refused
    assert "precision 'bfloat16'" in capsys.readouterr().err
    assert main(["explain", str(tmp_path / "p.png"), "--out", str(out), "--force", *RANDOM]) == 0
    record = json.loads(saved.read_text())
    assert record["settings"]["precision"] == "float32"
    assert main(["explain", str(tmp_path / "p.png"), "--out", str(out), *RANDOM]) == 0
    assert "already done" in capsys.readouterr().err
    # Settings are compared as they are: a saved job without the setting is another job.
    del record["settings"]["precision"], record["meta"]["job"]["settings"]["precision"]
    saved.write_text(json.dumps(record))
    assert main(["explain", str(tmp_path / "p.png"), "--out", str(out), *RANDOM]) == 2
    assert "already done" not in capsys.readouterr().err


def test_store_settings_key_is_the_settings_as_they_are():
    from extremal_contours.store import settings_key

    old = {"harmonics": 8, "iterations": 64}
    assert settings_key({"iterations": 64, "harmonics": 8}) == settings_key(old)  # the order does not count
    assert settings_key(old | {"precision": "float32"}) != settings_key(old)
    assert settings_key(old | {"precision": "bfloat16"}) != settings_key(old)


def test_results_of_other_areas_are_kept_and_the_same_area_is_skipped(tmp_path, capsys):
    _picture(tmp_path / "p.png", 4)
    out = tmp_path / "o"
    assert main(["explain", str(tmp_path / "p.png"), "--area", "0.1", "--out", str(out), *RANDOM]) == 0
    assert main(["explain", str(tmp_path / "p.png"), "--area", "0.2", "--out", str(out), *RANDOM]) == 0
    assert sorted(p.parent.name for p in out.rglob("explanation.json")) == ["area0.1", "area0.2"]
    capsys.readouterr()
    assert main(["explain", str(tmp_path / "p.png"), "--area", "0.2", "--out", str(out), *RANDOM]) == 0
    assert "p.png: already done" in capsys.readouterr().err
    # Both areas at once: the one not done is explained, the other kept as it was.
    stamp = (out / "p" / "area0.1" / "explanation.json").stat().st_mtime_ns
    assert main(["explain", str(tmp_path / "p.png"), "--area", "0.1", "0.3", "--out", str(out), *RANDOM]) == 0
    assert (out / "p" / "area0.3" / "explanation.json").is_file()
    assert (out / "p" / "area0.1" / "explanation.json").stat().st_mtime_ns == stamp


def test_an_output_folder_that_cannot_be_written_is_refused_before_any_picture(tmp_path, capsys, monkeypatch):
    _picture(tmp_path / "p.png", 5)
    from extremal_contours.explainer import ExtremalContour

    def never(*args, **kwargs):
        raise AssertionError("a picture was explained")

    monkeypatch.setattr(ExtremalContour, "attribute", never)
    assert main(["explain", str(tmp_path / "p.png"), "--out", "/sys/extremal-contours-out", *RANDOM]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[-1] == "error: cannot write to --out /sys/extremal-contours-out: operation not permitted"


def test_a_near_miss_class_name_gets_a_suggestion(capsys, tmp_path):
    _picture(tmp_path / "p.png", 6)
    assert main(["explain", str(tmp_path / "p.png"), "--target", "Egyptian kat", "--out", str(tmp_path / "o"), *RANDOM]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "error: --target 'Egyptian kat' is not a class name of this model (did you mean 'Egyptian cat'?)"


def test_help_defines_the_numbers_and_every_option_has_help(capsys):
    from extremal_contours.cli import build_parser

    parser = build_parser()
    for action in parser._subparsers._group_actions[0].choices.values():
        for option in action._actions:
            assert option.help, f"{action.prog} {option.option_strings or option.dest} has no help"
    with pytest.raises(SystemExit):
        main(["explain", "--help"])
    text = capsys.readouterr().out
    for term in ("preserve ratio", "delete drop", "dual", "ambiguous", "suspicious"):
        assert term in text


def test_area_auto_picks_the_smallest_area_keeping_the_share(tmp_path, capsys):
    _picture(tmp_path / "p.png", 7)
    out = tmp_path / "o"
    assert main(["explain", str(tmp_path / "p.png"), "--area", "auto", "--keep", "0.5", "--out", str(out), *RANDOM]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "0.05/0.1/0.2/0.4" in line and "50% of the class" in line and "summary.png" in line
    assert (out / "p" / "summary.png").is_file()
    records = {p.parent.name: json.loads(p.read_text()) for p in out.rglob("explanation.json")}
    assert set(records) == {"area0.05", "area0.1", "area0.2", "area0.4"}
    auto = records["area0.1"]["meta"]["auto"]
    ratios = {r["contours"][0]["area"]: r["contours"][0]["preserve"]["ratio"] for r in records.values()}
    keeping = [a for a in sorted(ratios) if ratios[a] >= 0.5]
    assert auto["keep"] == 0.5 and auto["chosen"] == (keeping[0] if keeping else None)
    assert main(["explain", str(tmp_path / "p.png"), "--area", "auto", "0.1", "--out", str(out), *RANDOM]) == 2
    assert "--area takes fractions" in capsys.readouterr().err
