"""Reading pictures from disk: every failure is one clear line, every conversion is said out loud."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ._errors import first_line

__all__ = ["IMAGE_SUFFIXES", "MAX_ASPECT", "MAX_PIXELS", "MIN_SIDE", "ImageError", "as_rgb", "find_images", "load_image"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
#: Smallest side accepted: below this a picture has too little for the model to see.
MIN_SIDE = 32
#: Largest picture accepted (PIL's decompression-bomb threshold).
MAX_PIXELS = 89_478_485
#: Longest side over shortest side a whole picture may have (``LoadedModel.resize``): the model sees
#: the short side at its input size, so a strip of 1:90 would become an input 90 times the usual one.
MAX_ASPECT = 8.0


class ImageError(ValueError):
    """A picture that cannot be used, with a one-line reason."""


def find_images(paths: list[str | os.PathLike[str]]) -> list[Path]:
    """Files given, and the pictures inside folders given (recursively, sorted), each once.

    Folder searches leave out saved explanations (folders holding an ``explanation.json``: an
    output folder inside an input folder holds the results' own PNGs) and hidden folders (a save in
    progress is staged in one).
    """
    found: list[Path] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            results = {p.parent for p in path.rglob("explanation.json")}

            def wanted(p: Path, root: Path = path, results: set[Path] = results) -> bool:
                if not (p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
                    return False
                inner = p.relative_to(root).parts[:-1]
                return not any(part.startswith(".") for part in inner) and not any(q in results for q in p.parents)

            items = sorted(p for p in path.rglob("*") if wanted(p))
        else:
            items = [path]
        for p in items:
            key = p.resolve()
            if key not in seen:
                seen.add(key)
                found.append(p)
    return found


def _orientation(image: Image.Image) -> int:
    """The picture's EXIF orientation (2-8: stored turned or mirrored, as phones do), 1 when upright,
    missing or unreadable (a damaged EXIF block leaves the pixels good)."""
    try:
        value = image.getexif().get(0x0112, 1)
    except Exception:
        return 1
    return value if value in (2, 3, 4, 5, 6, 7, 8) else 1


def as_rgb(image: Image.Image) -> Image.Image:
    """Any PIL picture as 8-bit RGB, converted as :func:`load_image` does (16-bit and float
    grayscale scaled, transparency composited on white)."""
    return _to_rgb(image)[0]


def _to_rgb(image: Image.Image) -> tuple[Image.Image, str | None]:
    """The picture as 8-bit RGB and a note on what was converted (``None`` for plain RGB)."""
    mode = image.mode
    if mode == "RGB":
        return image, None
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or values.max() > 255 else 255.0
        if values.min() < 0 or values.max() > 65535:
            raise ImageError(f"32-bit integer picture with values {values.min():.0f}..{values.max():.0f}; save it as 8 or 16 bit")
        grey = np.round(values / top * 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB"), f"{16 if top > 255 else 8}-bit grayscale scaled to 8-bit RGB"
    if mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if not np.isfinite(values).all():
            raise ImageError("floating-point picture with NaN or infinite values")
        if values.min() < 0 or values.max() > 1:
            raise ImageError(f"floating-point picture with values {values.min():.3g}..{values.max():.3g}; expected 0..1")
        grey = np.round(values * 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB"), "floating-point grayscale converted to 8-bit RGB"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB"), f"{mode} with transparency composited on white"
    if mode in ("L", "1"):
        return image.convert("RGB"), "grayscale converted to RGB (channels repeated)"
    if mode in ("P", "CMYK", "YCbCr", "LAB", "HSV"):
        return image.convert("RGB"), f"{mode} converted to RGB"
    raise ImageError(f"unsupported picture mode {mode!r}")


def load_image(path: str | os.PathLike[str]) -> tuple[Image.Image, str | None]:
    """Read a picture as 8-bit RGB.

    Returns:
        ``(image, note)``: ``note`` says what was converted (grayscale, transparency, 16-bit), or
        ``None`` for a plain RGB picture.

    Raises:
        ImageError: missing, unreadable, truncated, too small or too large, with a one-line reason.
    """
    path = Path(path)
    if not path.exists():
        raise ImageError(f"file not found: {path}")
    if path.is_dir():
        raise ImageError(f"is a folder, not a picture: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image: Image.Image = Image.open(path)
            w, h = image.size
            if w * h > MAX_PIXELS:
                raise ImageError(f"picture is {w}x{h} ({w * h / 1e6:.0f} MP), above the {MAX_PIXELS / 1e6:.0f} MP limit; downscale it first")
            if min(w, h) < MIN_SIDE:
                raise ImageError(f"picture is {w}x{h} px; at least {MIN_SIDE} px per side is needed")
            if getattr(image, "n_frames", 1) > 1:
                image.seek(0)
            image.load()
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"not a picture PIL can read: {path}") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"picture is too large (over {MAX_PIXELS / 1e6:.0f} MP): {path}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"cannot read {path}: {first_line(exc)} (truncated or corrupt file?)") from None
    orientation = _orientation(image)
    if orientation != 1:
        image = ImageOps.exif_transpose(image)
    rgb, note = _to_rgb(image)
    if orientation != 1:
        note = "; ".join(filter(None, [f"turned upright as its EXIF orientation ({orientation}) says", note]))
    return rgb, note
