"""How results show themselves in Jupyter (``_repr_html_``, ``_repr_pretty_``; see
:mod:`extremal_contours.notebook`): small embedded PNGs of the expected size and the numbers."""

from __future__ import annotations

import base64
import dataclasses
import io
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from extremal_contours import ContourResult, ExtremalContour
from extremal_contours.baselines import get_explainer
from extremal_contours.notebook import MAX_IMAGES, THUMBNAIL, png_data_uri, thumbnail_size
from extremal_contours.viz import PALETTE

FAST = {"iterations": 6, "starts": 2, "scan": 2, "progress": False}
URI = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def pictures(html: str) -> list[Image.Image]:
    """The embedded pictures of ``html``, decoded (each must be a PNG)."""
    out = []
    for data in URI.findall(html):
        raw = base64.b64decode(data, validate=True)
        assert raw.startswith(b"\x89PNG\r\n\x1a\n")
        with Image.open(io.BytesIO(raw)) as im:
            assert im.format == "PNG"
            out.append(im.convert("RGB"))
    return out


@pytest.fixture
def result(tiny, images) -> ContourResult:
    return ExtremalContour(tiny, harmonics=5, **FAST).attribute(images, target=[1, 2], areas=(0.1, 0.25), names=["a.jpg", "b.png"])


def test_result_html_embeds_one_overlay_per_image_and_area_and_the_numbers(result):
    html = result._repr_html_()
    assert html.count("<img") == 4  # 2 images x 2 areas
    assert [p.size for p in pictures(html)] == [(48, 40)] * 4  # a small input is never enlarged
    for name in ("a.jpg", "b.png", "class 1", "class 2", "preserve ratio", "delete drop", "flags", "verdict"):
        assert name in html
    for i in range(2):
        for j in range(2):
            assert f"{float(result.preserve_ratio[i, j]):.3g}" in html
            assert f"{float(result.delete_drop[i, j]):.3g}" in html
    assert html.count("<tr>") == 1 + 4  # the header and one row per (image, area)


def test_result_html_thumbnails_fit_the_limit_and_keep_the_aspect_ratio(tiny):
    x = torch.rand(1, 3, 100, 300, generator=torch.Generator().manual_seed(1))
    result = ExtremalContour(tiny, harmonics=3, **FAST).attribute(x, target=0, areas=(0.2,))
    (picture,) = pictures(result._repr_html_())
    assert picture.size == thumbnail_size(100, 300) == (THUMBNAIL, 85)


def test_result_without_pictures_still_renders(result):
    bare = dataclasses.replace(result, images=None)
    html = bare._repr_html_()
    assert "<img" not in html
    assert "<table" in html and f"{float(result.preserve_ratio[1, 1]):.3g}" in html


def test_result_html_caps_the_images_shown_and_says_how_many_more(tiny):
    x = torch.rand(MAX_IMAGES + 2, 3, 24, 24, generator=torch.Generator().manual_seed(2))
    result = ExtremalContour(tiny, harmonics=3, **FAST).attribute(x, target=0, areas=(0.2,))
    html = result._repr_html_()
    assert html.count("<img") == MAX_IMAGES
    assert f"2 more images not shown (the first {MAX_IMAGES} of {MAX_IMAGES + 2})" in html


def test_flags_and_verdict_are_shown_with_what_they_mean(result):
    flagged = dataclasses.replace(result, flags={**result.flags, "keeps_little": torch.ones(2, 2, dtype=torch.bool)})
    html = flagged._repr_html_()
    assert "keeps little" in html and "the region alone keeps under 25%" in html
    assert html.count("unique (") + html.count("ambiguous (") == 4  # the verdict, with the alternatives found
    unchecked = dataclasses.replace(result, flags={k: v for k, v in result.flags.items() if k != "ambiguous"})
    assert unchecked._repr_html_().count("not checked") == 4  # no verdict without the ambiguity check


def test_plain_text_is_a_few_lines_not_every_tensor(result, tiny, images):
    pretty = pytest.importorskip("IPython.lib.pretty", reason="IPython (test extra, with ipykernel) not installed")
    text = pretty.pretty(result)
    assert text.startswith("ContourResult: 2 image(s) x 2 area(s)")
    assert "tensor(" not in text and len(text.splitlines()) == 1 + 2 * 3
    line = pretty.pretty(get_explainer("gradcam", tiny).attribute(images, target=1))
    assert line.startswith("Attribution gradcam: 2 map(s) 40x48, classes [1, 1]") and "\n" not in line


def test_gradcam_attribution_shows_its_map_as_a_heat_picture(tiny, images):
    attribution = get_explainer("gradcam", tiny).attribute(images, target=0)  # class 1's map is all zeros
    html = attribution._repr_html_()
    shown = pictures(html)
    assert [p.size for p in shown] == [(48, 40)] * 2
    assert "gradcam" in html and "map max" in html
    colours = {tuple(c) for c in np.asarray(shown[0]).reshape(-1, 3).tolist()}
    assert (0, 0, 4) in colours and (252, 255, 164) in colours  # inferno from its coldest to its hottest end


def test_mask_attribution_draws_its_masks_outlines_and_fidelity(tiny, images):
    attribution = get_explainer("contour", tiny, harmonics=3, **FAST).attribute(images, target=1, areas=(0.2,))
    html = attribution._repr_html_()
    shown = pictures(html)
    assert len(shown) == 2 and "masks at area 0.2" in html and "preserve ratio" in html
    orange = tuple(int(PALETTE[0][k : k + 2], 16) for k in (1, 3, 5))
    assert (np.asarray(shown[0]) == orange).all(-1).sum() > 10  # the area's outline, in its colour


def test_a_swept_map_shows_the_fidelity_of_the_areas_asked_for(tiny, images):
    attribution = get_explainer("contour_map", tiny, harmonics=3, **FAST).attribute(images[:1], target=0, areas=(0.3,))
    detail = attribution.detail
    assert len(detail.areas) > 1  # the sweep's areas, of which the masks keep one
    html = attribution._repr_html_()
    k = detail.areas.index(0.3)
    assert html.count("<tr>") == 2 and f"{float(detail.preserve_ratio[0, k]):.3g}" in html


def test_png_data_uri_round_trips():
    picture = Image.new("RGB", (30, 20), (10, 200, 30))
    uri = png_data_uri(picture)
    assert uri.startswith("data:image/png;base64,")
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as im:
        assert im.size == (30, 20) and im.convert("RGB").getpixel((5, 5)) == (10, 200, 30)


def test_reading_a_result_imports_no_drawing_code():
    code = (
        "import sys, extremal_contours.result, extremal_contours.baselines.registry\n"
        "drawing = [m for m in ('extremal_contours.notebook', 'extremal_contours.viz', 'extremal_contours.export', 'matplotlib') if m in sys.modules]\n"
        "assert not drawing, drawing\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
