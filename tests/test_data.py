import json

import pytest
from PIL import Image

from conftest import SHARED
from extremal_contours.data import AnnotatedFolder, ImageNetVal, VOCDetection, box_mask, input_mask, open_dataset
from extremal_contours.models import LoadedModel


def test_box_mask_covers_pixel_centres_inside():
    mask = box_mask([[2, 3, 6, 5]], 10, 8)
    assert mask.shape == (8, 10)
    assert mask.sum() == 4 * 2
    assert mask[3, 2] and mask[4, 5] and not mask[5, 5] and not mask[3, 6]


def test_annotated_folder(tmp_path):
    Image.new("RGB", (40, 30)).save(tmp_path / "a.jpg")
    entries = [{"file": "a.jpg", "label": 3, "label_name": "x", "boxes": [[1, 2, 10, 12]], "width": 40}]
    (tmp_path / "annotations.json").write_text(json.dumps(entries))
    data = open_dataset(tmp_path)
    assert isinstance(data, AnnotatedFolder) and len(data) == 1 and data.has_boxes
    s = data[0]
    assert s.label == 3 and s.boxes == ((1.0, 2.0, 10.0, 12.0),) and s.extra["width"] == 40


def test_imagenet_val_layout(tmp_path):
    Image.new("RGB", (50, 40)).save(tmp_path / "ILSVRC2012_val_00000001.JPEG")
    (tmp_path / "LOC_val_solution.csv").write_text(
        "ImageId,PredictionString\n"
        "ILSVRC2012_val_00000001,n01751748 1 2 30 20 n01751748 5 5 10 10 n09999999 0 0 1 1\n"
        "ILSVRC2012_val_00000002,n01751748 1 2 3 4\n"
    )
    data = ImageNetVal(tmp_path)
    assert len(data) == 1
    assert data[0].label == 65  # sea snake, in sorted-synset order
    assert data[0].boxes == ((1.0, 2.0, 30.0, 20.0), (5.0, 5.0, 10.0, 10.0))


def test_voc_layout(tmp_path):
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "JPEGImages").mkdir()
    (tmp_path / "Annotations" / "0001.xml").write_text(
        "<annotation><filename>0001.jpg</filename>"
        "<object><name>dog</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>9</xmax><ymax>8</ymax></bndbox></object>"
        "<object><name>cat</name><bndbox><xmin>0</xmin><ymin>0</ymin><xmax>3</xmax><ymax>3</ymax></bndbox></object>"
        "</annotation>"
    )
    data = VOCDetection(tmp_path)
    assert data[0].label is None and data[0].label_name == "dog" and data[0].boxes == ((1.0, 2.0, 9.0, 8.0),)


def test_input_mask_follows_the_picture_through_the_crop():
    lm = LoadedModel(model=None, name="id", input_size=100, mean=(0.5,) * 3, std=(0.5,) * 3, crop_pct=1.0)  # type: ignore[arg-type]
    from extremal_contours.data import Sample

    # A 400x200 picture; the box covers the left quarter, which the centre crop cuts away.
    sample = Sample(path=None, name="x", label=0, boxes=((0.0, 0.0, 100.0, 200.0),))  # type: ignore[arg-type]
    whole = input_mask(sample, (400, 200), lambda im: lm.resize(im, "whole"))
    assert whole.shape == (100, 200) and abs(whole.mean() - 0.25) < 0.02
    centre = input_mask(sample, (400, 200), lambda im: lm.resize(im, "center"))
    assert centre.shape == (100, 100) and centre.sum() == 0


def test_shared_sets_read_when_present():
    if not (SHARED / "imagenet_val_fullres" / "annotations.json").is_file():
        pytest.skip("../shared/data is absent")
    data = open_dataset(SHARED / "imagenet_val_fullres")
    assert len(data) == 60 and all(s.boxes for s in data)
    with Image.open(data[0].path) as im:
        mask = box_mask(data[0].boxes, *im.size)
    assert mask.shape == (im.height, im.width) and 0 < mask.mean() < 1
    for x1, y1, x2, y2 in data[0].boxes:  # each box's middle pixel is inside
        assert mask[int((y1 + y2) / 2), int((x1 + x2) / 2)]
