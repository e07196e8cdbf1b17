import numpy as np
import pytest
from PIL import Image

from extremal_contours import images as I


def _save(tmp_path, name, image, **kw):
    path = tmp_path / name
    image.save(path, **kw)
    return path


def test_rgb_reads_plainly(tmp_path):
    path = _save(tmp_path, "a.png", Image.new("RGB", (64, 48), (10, 20, 30)))
    image, note = I.load_image(path)
    assert image.mode == "RGB" and image.size == (64, 48) and note is None


def test_grayscale_is_converted_and_said(tmp_path):
    path = _save(tmp_path, "g.jpg", Image.new("L", (64, 48), 100))
    image, note = I.load_image(path)
    assert image.mode == "RGB" and "grayscale" in note
    assert np.abs(np.array(image).astype(int) - 100).max() <= 1


def test_rgba_is_composited_on_white(tmp_path):
    rgba = Image.new("RGBA", (64, 48), (0, 0, 0, 0))
    path = _save(tmp_path, "t.png", rgba)
    image, note = I.load_image(path)
    assert "transparency" in note
    assert np.array(image).min() == 255  # fully transparent black -> white


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    values = np.full((48, 64), 32768, dtype=np.uint16)
    values[:, :32] = 65535
    path = _save(tmp_path, "d.png", Image.fromarray(values))
    image, note = I.load_image(path)
    assert "16-bit" in note
    pixels = np.array(image)[..., 0]
    assert pixels[0, 0] == 255 and abs(int(pixels[0, 40]) - 128) <= 1  # half range stays half


def test_truncated_file(tmp_path):
    good = _save(tmp_path, "full.jpg", Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)))
    data = good.read_bytes()
    bad = tmp_path / "cut.jpg"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(I.ImageError) as exc:
        I.load_image(bad)
    assert "truncated" in str(exc.value) and "\n" not in str(exc.value)


def test_not_an_image_and_missing(tmp_path):
    junk = tmp_path / "notes.jpg"
    junk.write_text("hello")
    with pytest.raises(I.ImageError, match="not a picture"):
        I.load_image(junk)
    with pytest.raises(I.ImageError, match="not found"):
        I.load_image(tmp_path / "nope.png")
    with pytest.raises(I.ImageError, match="folder"):
        I.load_image(tmp_path)


def test_tiny_and_huge(tmp_path, monkeypatch):
    tiny = _save(tmp_path, "tiny.png", Image.new("RGB", (20, 200)))
    with pytest.raises(I.ImageError, match="20x200 px"):
        I.load_image(tiny)
    monkeypatch.setattr(I, "MAX_PIXELS", 1000)
    big = _save(tmp_path, "big.png", Image.new("RGB", (40, 40)))
    with pytest.raises(I.ImageError, match="downscale"):
        I.load_image(big)


def test_find_images_expands_folders_sorted(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("b.jpg", "a.png", "sub/c.JPEG", "readme.txt"):
        (tmp_path / name).write_bytes(b"x")
    found = I.find_images([tmp_path])
    assert [p.name for p in found] == ["a.png", "b.jpg", "c.JPEG"]


def test_find_images_leaves_out_saved_explanations_hidden_folders_and_repeats(tmp_path):
    for name in ("a.png", "out/x/mask.png", "out/x/explanation.json", "out/x/deeper/y.png", "sub/b.png", "sub/.tmp/c.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    found = I.find_images([tmp_path, tmp_path / "a.png"])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a.png", "sub/b.png"]


def test_exif_orientation_turns_the_picture_upright(tmp_path):
    pixels = np.zeros((40, 60, 3), dtype=np.uint8)
    pixels[:, :10] = 255  # a white band on the left, as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise
    path = _save(tmp_path, "phone.jpg", Image.fromarray(pixels), exif=exif.tobytes())
    image, note = I.load_image(path)
    assert image.size == (40, 60) and "EXIF orientation (6)" in note
    assert np.array(image)[:5, :, 0].mean() > 200  # the band is now at the top
    plain, plain_note = I.load_image(_save(tmp_path, "plain.jpg", Image.fromarray(pixels)))
    assert plain.size == (60, 40) and plain_note is None


@pytest.mark.parametrize(
    "orientation, turn",
    [
        (2, Image.Transpose.FLIP_LEFT_RIGHT),
        (3, Image.Transpose.ROTATE_180),
        (4, Image.Transpose.FLIP_TOP_BOTTOM),
        (5, Image.Transpose.TRANSPOSE),
        (6, Image.Transpose.ROTATE_270),
        (7, Image.Transpose.TRANSVERSE),
        (8, Image.Transpose.ROTATE_90),
    ],
)
def test_every_exif_orientation_is_undone(tmp_path, orientation, turn):
    pixels = np.random.default_rng(orientation).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = _save(tmp_path, "o.png", Image.fromarray(pixels), exif=exif.tobytes())
    image, note = I.load_image(path)
    assert np.array_equal(np.array(image), np.array(Image.fromarray(pixels).transpose(turn)))
    assert f"EXIF orientation ({orientation})" in note
