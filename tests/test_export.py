"""GeoJSON of multi-contour regions: valid Simple Features (the polygons of a MultiPolygon never
overlap) and the same area as the binary mask."""

from __future__ import annotations

import json
import math
from itertools import combinations

import numpy as np
import torch
from matplotlib.path import Path as MplPath

from extremal_contours import ContourParts, ContourResult
from extremal_contours import contour as C
from extremal_contours.export import region_polygons


def discs(centres_px: list[tuple[float, float]], radii: list[float], height: int = 64, width: int = 96) -> ContourResult:
    """One image, one area: the union of discs (pixels), with made-up scores."""
    m = len(radii)
    unit = math.sqrt(height * width)
    centre = C.from_pixels(torch.tensor(centres_px, dtype=torch.float32), height, width)
    coeffs = torch.zeros(m, 4, 2)
    scale = torch.tensor(radii, dtype=torch.float32) / unit
    polygons = C.to_pixels(C.polygon(centre, coeffs, scale, extent=C.image_extent(height, width)), height, width)
    binary, _ = C.rasterize_union(centre[None], coeffs[None], scale[None], height, width, edge=None)
    soft, _ = C.rasterize_union(centre[None], coeffs[None], scale[None], height, width, edge=1.0)
    parts = ContourParts(centre[None, None], coeffs[None, None], scale[None, None], polygons[None, None], torch.tensor([[m]]))
    largest = int(torch.tensor(radii).argmax())
    return ContourResult(
        areas=(0.1,), variant="preserve", image_size=(height, width),
        centre=centre[None, None, largest], coeffs=coeffs[None, None, largest], scale=scale[None, None, largest],
        edge=1.0, masks=binary[None], soft_masks=soft[None], polygons=polygons[None, None, largest],
        visible_area=binary.float().mean()[None, None], preserve_score=torch.ones(1, 1), delete_score=torch.ones(1, 1),
        clean_score=torch.ones(1), classes=None, class_names=None, clean_probability=None, preserve_probability=None,
        delete_probability=None, history=torch.zeros(1, 1, 2), score="logit", parts=parts,
    )  # fmt: skip


def shoelace(ring: np.ndarray) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1]))


def geometry_polygons(geometry: dict) -> list[list[np.ndarray]]:
    polygons = [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
    return [[np.array(ring) for ring in polygon] for polygon in polygons]


def check_simple_features(result: ContourResult) -> list[list[np.ndarray]]:
    """The region's GeoJSON polygons, checked: closed rings, exteriors by the right-hand rule and holes
    the other way, no two polygons overlapping, and the area of the binary mask."""
    geometry = json.loads(json.dumps(result.geojson(0)))["features"][0]["geometry"]
    polygons = geometry_polygons(geometry)
    for polygon in polygons:
        assert all(np.array_equal(ring[0], ring[-1]) for ring in polygon)
        assert shoelace(polygon[0]) > 0 and all(shoelace(hole) < 0 for hole in polygon[1:])
    for a, b in combinations(polygons, 2):
        assert not MplPath(a[0]).intersects_path(MplPath(b[0]), filled=True)
    area = sum(shoelace(ring) for polygon in polygons for ring in polygon)
    pixels = int(result.masks[0, 0, 0].sum())
    assert abs(area - pixels) < 0.03 * pixels, (area, pixels)
    return polygons


def test_overlapping_contours_are_written_as_their_union_and_separate_ones_stay_apart():
    result = discs([(30, 30), (48, 32), (80, 20)], [12, 10, 8])
    polygons = check_simple_features(result)
    assert json.loads(json.dumps(result.geojson(0)))["features"][0]["geometry"]["type"] == "MultiPolygon"
    assert len(polygons) == 2  # the union of the first two, and the third on its own
    union, alone = polygons
    assert len(union) == 1 and union[0][:, 0].min() < 19 and union[0][:, 0].max() > 57
    np.testing.assert_allclose(alone[0][:-1], result.outlines(0, 0)[2], atol=1e-6)  # the contour itself
    # The SVG path and the overlay still draw every contour.
    assert result.svg_path(0, 0).count("M ") == 3


def test_apart_contours_stay_a_multipolygon_of_their_own_outlines():
    result = discs([(20, 32), (76, 32)], [10, 10])
    polygons = check_simple_features(result)
    assert len(polygons) == 2
    for polygon, outline in zip(polygons, result.outlines(0, 0), strict=True):
        np.testing.assert_allclose(polygon[0][:-1], outline, atol=1e-6)


def test_overlapping_contours_in_one_piece_are_a_polygon_clipped_to_the_image():
    result = discs([(10, 30), (20, 36)], [14, 12])  # both cut by the left border
    (polygon,) = check_simple_features(result)
    assert result.geojson(0)["features"][0]["geometry"]["type"] == "Polygon"
    assert polygon[0][:, 0].min() >= 0 and len(polygon) == 1


def test_a_ring_of_contours_keeps_its_hole():
    # Three discs, each overlapping the other two, leave the middle uncovered: one polygon with a hole.
    corners = [(48 + 24 * math.cos(a), 32 + 24 * math.sin(a)) for a in (0.3, 0.3 + 2 * math.pi / 3, 0.3 + 4 * math.pi / 3)]
    result = discs(corners, [21.5, 21.5, 21.5])
    assert not result.masks[0, 0, 0, 32, 48]  # the middle is outside every disc
    (polygon,) = check_simple_features(result)
    assert len(polygon) == 2  # exterior and the hole
    assert MplPath(polygon[1]).contains_point((48, 32))


def test_region_polygons_of_one_contour_per_region(tiny, images):
    from extremal_contours import ExtremalContour

    result = ExtremalContour(tiny, iterations=2, starts=1, scan=1, progress=False).attribute(images, 0, areas=(0.1, 0.2))
    (polygon,) = region_polygons(result, 1, 1)
    np.testing.assert_array_equal(polygon[0][:-1], result.polygon(1, 1))
