import dataclasses
import json
import math
import os
import re
import stat

import numpy as np
import pytest
import torch
from PIL import Image

from extremal_contours import ContourParts, ContourResult, ExtremalContour
from extremal_contours import contour as C
from extremal_contours import export as E
from extremal_contours import record as R

FAST = {"iterations": 6, "starts": 2, "scan": 2, "progress": False}


@pytest.fixture
def result(tiny, images) -> ContourResult:
    return ExtremalContour(tiny, harmonics=5, **FAST).attribute(images, target=[1, 2], areas=(0.1, 0.25), names=["a.jpg", "b.png"])


def test_save_writes_every_file_per_image(result, tmp_path):
    out = result.save(tmp_path / "run")
    for name in ("a", "b"):
        folder = out / name
        expected = {"explanation.json", "input.png", "contours.geojson"}
        expected |= {f"{kind}_area{a:.4g}.png" for kind in ("overlay", "mask") for a in (0.1, 0.25)}
        assert {p.name for p in folder.iterdir()} == expected
        with Image.open(folder / "overlay_area0.1.png") as im:
            assert im.size == (48, 40)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_json_records_parameters_settings_and_versions(result, tmp_path):
    record = json.loads((result.save(tmp_path / "r") / "a" / "explanation.json").read_text())
    assert record["format"] == R.FORMAT
    assert record["image"] == {"height": 40, "width": 48, "name": "a.jpg"}
    assert record["target"]["class"] == 1
    contour = record["contours"][1]
    assert contour["area"] == 0.25
    assert len(contour["centre"]) == 2 and len(contour["harmonics"]) == 5
    assert record["settings"]["harmonics"] == 5 and record["seed"] == 0
    assert {"extremal-contours", "torch", "python"} <= set(record["versions"])
    assert "forward_backward" in record["cost"]


def test_contour_redrawn_from_the_json_alone(result, tmp_path):
    folder = result.save(tmp_path / "r") / "b"
    record = json.loads((folder / "explanation.json").read_text())
    h, w = record["image"]["height"], record["image"]["width"]
    for j, entry in enumerate(record["contours"]):
        centre = torch.tensor([entry["centre"]])
        coeffs = torch.tensor([entry["harmonics"]])
        scale = torch.tensor([entry["scale"]])
        redrawn = C.rasterize(centre, coeffs, scale, h, w, edge=None)[0, 0].numpy()
        with Image.open(folder / f"mask_area{entry['area']:.4g}.png") as im:
            saved = np.array(im) > 0
        assert (redrawn == saved).mean() > 0.999
        assert (redrawn == result.masks[1, j, 0].numpy()).all()


def test_load_round_trip(result, tmp_path):
    loaded = ContourResult.load(result.save(tmp_path / "r"))
    assert loaded.num_images == 2
    assert loaded.names == ("a.jpg", "b.png")
    assert torch.equal(loaded.masks, result.masks)
    torch.testing.assert_close(loaded.centre, result.centre)
    torch.testing.assert_close(loaded.preserve_ratio, result.preserve_ratio)
    torch.testing.assert_close(loaded.soft_masks, result.soft_masks, atol=1e-5, rtol=0)
    assert loaded.settings == result.settings
    assert torch.equal(loaded.images, result.images)
    single = ContourResult.load(result.select(0).save(tmp_path / "one"))
    assert single.num_images == 1 and torch.equal(single.masks, result.masks[:1])


def test_save_is_atomic(result, tmp_path, monkeypatch):
    target = result.save(tmp_path / "r")
    before = json.loads((target / "a" / "explanation.json").read_text())

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(E, "draw_overlay", broken)
    with pytest.raises(OSError, match="disk full"):
        result.save(tmp_path / "r")
    # The earlier result is intact and no staging folder is left.
    assert json.loads((target / "a" / "explanation.json").read_text()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]
    with pytest.raises(OSError):
        result.save(tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()


def test_overlay_on_the_original_picture(result, tmp_path):
    big = Image.new("RGB", (480, 400), "white")
    out = result.select(0).save(tmp_path / "r", image=big)
    with Image.open(out / "overlay_area0.1.png") as im:
        assert im.size == (480, 400)
        pixels = np.array(im)
    # Outside the region the picture is dimmed; the region keeps its brightness (filled lightly).
    mask = result.masks[0, 0, 0].numpy().repeat(10, 0).repeat(10, 1)
    assert pixels[~mask].mean() < 160
    with pytest.raises(ValueError, match="aspect ratio"):
        result.select(0).save(tmp_path / "bad", image=Image.new("RGB", (100, 300)))


def test_geojson_and_svg(result):
    geo = result.geojson(0)
    assert geo["type"] == "FeatureCollection" and len(geo["features"]) == 2
    ring = geo["features"][0]["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1]
    xs = [p[0] for p in ring]
    ys = [p[1] for p in ring]
    assert min(xs) >= 0 and max(xs) <= 48 and min(ys) >= 0 and max(ys) <= 40
    # Shoelace area of the exported polygon is the requested share of the picture.
    x, y = np.array(xs), np.array(ys)
    area = 0.5 * abs(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1])) / (48 * 40)
    assert math.isclose(area, 0.1, abs_tol=0.005)
    path = result.svg_path(0, 1)
    assert path.startswith("M ") and path.endswith(" Z") and path.count("L ") == result.polygons.shape[2] - 1


def test_select_and_ratios(result):
    one = result[1]
    assert one.num_images == 1 and one.names == ("b.png",)
    torch.testing.assert_close(one.preserve_ratio, result.preserve_ratio[1:])
    expected = result.preserve_probability / result.clean_probability[:, None]
    torch.testing.assert_close(result.preserve_ratio, expected)
    with pytest.raises(IndexError):
        result.select(2)


def test_load_rejects_other_files(tmp_path):
    (tmp_path / "explanation.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match="not an extremal-contours record"):
        ContourResult.load(tmp_path)
    with pytest.raises(FileNotFoundError):
        ContourResult.load(tmp_path / "missing")


def test_save_refuses_to_replace_a_file_and_keeps_the_usual_permissions(result, tmp_path):
    (tmp_path / "afile").write_text("keep me")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        result.save(tmp_path / "afile")
    assert (tmp_path / "afile").read_text() == "keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["afile"]
    old = os.umask(0o022)
    try:
        folder = result.save(tmp_path / "res")
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755


def test_non_finite_scores_are_saved_as_strict_json_and_read_back_as_nan(result, tmp_path):
    one = result.select(0)
    broken = dataclasses.replace(one, clean_probability=torch.zeros(1), preserve_score=torch.full_like(one.preserve_score, math.inf))
    folder = broken.save(tmp_path / "r")

    def refuse(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    for name in ("explanation.json", "contours.geojson"):
        json.loads((folder / name).read_text(), parse_constant=refuse)
    back = ContourResult.load(folder)
    assert torch.isnan(back.preserve_score).all() and back.clean_probability.item() == 0.0


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda text: text[: len(text) // 2], "not valid JSON"),
        (lambda text: "[1, 2]", "a JSON list"),
        (lambda text: text.replace('"height"', '"h"'), "missing 'height'"),
        (lambda text: re.sub(r'"height": \d+', '"height": 1000000', text), "not a picture size"),
        (lambda text: re.sub(r'"harmonics": \[', '"harmonics": [[1, 2, 3], ', text, count=1), "damaged record"),
    ],
)
def test_load_of_a_damaged_record_names_the_file(result, tmp_path, damage, message):
    folder = result.select(0).save(tmp_path / "r")
    record = folder / "explanation.json"
    record.write_text(damage(record.read_text()))
    with pytest.raises(ValueError, match=message) as info:
        ContourResult.load(folder)
    assert str(record) in str(info.value) and "\n" not in str(info.value)


def test_load_of_a_folder_of_different_results_says_so(result, tmp_path, tiny, images):
    result.select(0).save(tmp_path / "all" / "a")
    dataclasses.replace(result.select(1), areas=(0.1, 0.3)).save(tmp_path / "all" / "b")
    with pytest.raises(ValueError, match="differ in image size, areas or settings"):
        ContourResult.load(tmp_path / "all")
    other = ExtremalContour(tiny, harmonics=3, **FAST).attribute(images[:1], target=1, areas=(0.1, 0.25))
    result.select(0).save(tmp_path / "k" / "a")
    other.save(tmp_path / "k" / "b")
    with pytest.raises(ValueError, match="differ in image size, areas or settings"):
        ContourResult.load(tmp_path / "k")


def test_load_finds_results_in_nested_folders_and_save_never_replaces_other_files(result, tmp_path):
    result.select(0).save(tmp_path / "out" / "sub1" / "x")
    folder = result.select(1).save(tmp_path / "out" / "sub2" / "y")
    (folder / "input.png").unlink()  # one without its picture: loaded together, the pictures are dropped
    both = ContourResult.load(tmp_path / "out")
    assert both.num_images == 2 and both.images is None
    (tmp_path / "photos" / "sub").mkdir(parents=True)
    (tmp_path / "photos" / "sub" / "mine.png").write_bytes(b"user data")
    with pytest.raises(ValueError, match="holds other files than a saved explanation"):
        result.select(0).save(tmp_path / "photos" / "sub")
    assert (tmp_path / "photos" / "sub" / "mine.png").read_bytes() == b"user data"
    assert sorted(p.name for p in (tmp_path / "photos").iterdir()) == ["sub"]  # no staging folder left


def test_parts_api_pads_and_stacks_and_results_concatenate(result):
    single = result.all_parts()  # one contour per region, as parts
    assert single.slots == 1 and single.count.tolist() == [[1, 1], [1, 1]]
    torch.testing.assert_close(single.centre[:, :, 0], result.centre)
    wide = single.padded(3)
    assert wide.centre.shape == (2, 2, 3, 2) and wide.coeffs.shape[:3] == (2, 2, 3) and torch.equal(wide.count, single.count)
    assert not wide.scale[:, :, 1:].any() and wide.outlines(0, 1)[0].tolist() == result.polygon(0, 1).tolist()
    with pytest.raises(ValueError, match="cannot pad 3 contour slots down to 1"):
        wide.padded(1)
    stacked = ContourParts.concat([single.take(slice(0, 1)), wide.take(slice(1, 2))])
    assert stacked.slots == 3 and stacked.centre.shape[0] == 2 and stacked.count.tolist() == [[1, 1], [1, 1]]
    back = ContourResult.concat([result.select(0), result.select(1)])
    assert back.names == result.names and torch.equal(back.masks, result.masks) and back.parts is None
    with pytest.raises(ValueError, match="some have classes and others not"):
        ContourResult.concat([result.select(0), dataclasses.replace(result.select(1), classes=None)])
