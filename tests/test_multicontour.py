"""Multi-contour regions: the union of M contours, their exact area, auto, and every export."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import BrightSpot, TinyNet
from extremal_contours import ContourResult, ExtremalContour
from extremal_contours.store import ResultStore, load_results, redraw


def two_discs(height: int = 64, width: int = 96, radius: float = 10.0) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Two bright discs far apart, and their masks."""
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    discs = [((xs - cx) ** 2 + (ys - 32) ** 2) < radius**2 for cx in (20, 76)]
    x = torch.full((1, 3, height, width), 0.3)
    for d in discs:
        x[:, :, d] = 1.0
    return x, discs


def explainer(**kw) -> ExtremalContour:
    return ExtremalContour(BrightSpot(), iterations=40, starts=2, scan=3, perturbation_options={"max_sigma": 6.0}, progress=False, **kw)


def test_two_contours_find_two_objects_one_cannot():
    x, discs = two_discs()
    area = 0.1
    two = explainer().attribute(x, target=0, areas=(area,), contours=2)
    one = explainer().attribute(x, target=0, areas=(area,), contours=1)
    union = two.masks[0, 0, 0]
    assert abs(float(union.float().mean()) - area) < 0.01  # exact area on the union
    covered = [float((union & d).sum() / d.sum()) for d in discs]
    assert min(covered) > 0.6, covered  # each disc mostly inside the region
    # each contour sits on its own disc
    assert two.parts is not None and two.parts.count.tolist() == [[2]]
    w = two.image_size[1]
    homes = set()
    for polygon in two.parts.outlines(0, 0):
        cx = float(polygon[:, 0].mean())
        homes.add(0 if cx < w / 2 else 1)
    assert homes == {0, 1}
    one_covered = [float((one.masks[0, 0, 0] & d).sum() / d.sum()) for d in discs]
    assert min(one_covered) < 0.5 < max(one_covered)  # one star-convex region keeps one disc
    assert float(two.preserve_score[0, 0]) > float(one.preserve_score[0, 0])
    assert two.settings["contours"] == 2


def test_auto_adds_a_contour_only_when_it_helps():
    x, _ = two_discs()
    single, _ = two_discs()
    single[:, :, :, 48:] = 0.3  # only the left disc
    result = explainer().attribute(torch.cat([x, single]), target=0, areas=(0.1,), contours="auto")
    assert result.parts is not None
    assert result.parts.count[:, 0].tolist() == [2, 1]
    assert result.settings["contours"] == "auto"
    assert result.cost["forward_backward"] > explainer().attribute(x, target=0, areas=(0.1,)).cost["forward_backward"]


def test_same_seed_same_multi_contours(tiny, images):
    e = ExtremalContour(tiny, iterations=12, starts=2, scan=2, progress=False)
    a = e.attribute(images, target=1, areas=(0.1, 0.3), contours=3, seed=4)
    b = e.attribute(images, target=1, areas=(0.1, 0.3), contours=3, seed=4)
    assert torch.equal(a.masks, b.masks) and torch.equal(a.parts.centre, b.parts.centre)
    assert a.parts.centre.shape[:3] == (2, 2, 3)
    assert (a.visible_area - torch.tensor([0.1, 0.3])).abs().max() < 0.01


def test_multi_contour_exports_and_store(tmp_path, tiny, images):
    e = ExtremalContour(tiny, iterations=8, starts=1, scan=2, progress=False)
    result = e.attribute(images[:1], target=0, areas=(0.2,), contours=2, names=["a.png"])
    saved = result.save(tmp_path / "r")
    back = ContourResult.load(saved)
    assert torch.equal(back.masks, result.masks)  # redrawn from the two contours' parameters
    assert back.parts is not None and back.parts.count.tolist() == [[2]]
    geometry = json.loads((saved / "contours.geojson").read_text())["features"][0]["geometry"]
    assert geometry["type"] == "MultiPolygon" and len(geometry["coordinates"]) == 2
    assert result.svg_path().count("M ") == 2
    record = json.loads((saved / "explanation.json").read_text())
    parts = record["contours"][0]["parts"]
    assert len(parts) == 2
    # each contour's own area; together at least the union's (they may overlap)
    assert sum(p["visible_area"] for p in parts) >= float(result.visible_area[0, 0]) - 0.01
    assert all(0 < p["visible_area"] <= 0.21 for p in parts)
    store = ResultStore(tmp_path / "s.sqlite")
    store.add(result)
    row = load_results(tmp_path / "s.sqlite")[0]
    assert len(row["parts"]) == 2
    assert torch.equal(redraw(row), result.masks[0, 0, 0])


@pytest.mark.parametrize("bad", [0, -1, "two", 1.5, True])
def test_bad_contour_counts(tiny, images, bad):
    with pytest.raises(ValueError, match="contours must be"):
        ExtremalContour(tiny, iterations=4, starts=1, progress=False).attribute(images, contours=bad)


def test_sweeps_stay_single_contour(tiny, images):
    e = ExtremalContour(TinyNet().eval(), iterations=4, starts=1, progress=False, nesting=1.0)
    with pytest.raises(ValueError, match="one contour per region"):
        e.attribute(images, areas=(0.1, 0.2), contours=2)
