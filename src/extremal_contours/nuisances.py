"""Nuisance changes of a picture that should not change its explanation, and the way back.

A user calls an explanation consistent when the same picture, shifted by a few pixels, flipped,
saved again as JPEG or touched by faint noise, gets the same explanation. Each nuisance here is a
tensor function on model inputs ``(N, C, H, W)`` (normalised with the model's ``mean`` and ``std``),
and :func:`carry_back` brings a mask or map made on the changed picture back to the original frame;
:func:`common_window` is the part of the frame that both pictures show.

- ``shift``: the content moves :data:`SHIFT` pixels right and down; the uncovered top and left
  border is filled by reflection;
- ``flip``: left-right mirror;
- ``jpeg``: the picture (8-bit, as displayed) saved as JPEG at quality :data:`JPEG_QUALITY` and read back;
- ``noise``: Gaussian noise of standard deviation :data:`NOISE` in pixel units (0..1), seeded.

This module imports nothing else of this package.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

__all__ = ["JPEG_QUALITY", "NOISE", "NUISANCES", "SHIFT", "apply", "carry_back", "common_window", "shift"]

NUISANCES = ("shift", "flip", "jpeg", "noise")
SHIFT = 4
JPEG_QUALITY = 90
NOISE = 2 / 255


def shift(t: Tensor, fill: str = "reflect") -> Tensor:
    """``t (..., H, W)`` with its content moved :data:`SHIFT` pixels right and down; the uncovered top
    and left border is filled by reflection (pictures) or with zeros (``fill="zeros"``: masks)."""
    if fill == "zeros":
        return F.pad(t, (SHIFT, 0, SHIFT, 0))[..., : t.shape[-2], : t.shape[-1]]
    return F.pad(t, (SHIFT, 0, SHIFT, 0), mode="reflect")[..., : t.shape[-2], : t.shape[-1]]


def _stats(values: Sequence[float], x: Tensor) -> Tensor:
    return torch.as_tensor(values, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)


def _jpeg(x: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    m, s = _stats(mean, x), _stats(std, x)
    pixels = ((x * s + m).clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    out = []
    for picture in pixels:
        buffer = io.BytesIO()
        squeeze = picture.shape[-1] == 1
        Image.fromarray(picture[..., 0] if squeeze else picture).save(buffer, format="JPEG", quality=JPEG_QUALITY)
        decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())))
        out.append(decoded[..., None] if squeeze else decoded)
    back = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).to(device=x.device, dtype=x.dtype) / 255
    return (back - m) / s


def apply(
    x: Tensor, kind: str, *, mean: Sequence[float], std: Sequence[float], seeds: Sequence[int] | None = None
) -> Tensor:
    """The pictures ``x`` changed by the nuisance ``kind``.

    Args:
        x: ``(N, C, H, W)`` model inputs, normalised with ``mean`` and ``std`` (one value per channel).
        kind: one of :data:`NUISANCES`.
        mean, std: the model's input normalisation (the JPEG and the noise act on pixels).
        seeds: one seed per picture for ``noise`` (default: 0 for all).

    Returns:
        ``(N, C, H, W)`` in the same normalisation.

    Example:
        >>> x = torch.rand(1, 3, 16, 16)
        >>> torch.equal(apply(x, "flip", mean=[0.0] * 3, std=[1.0] * 3), x.flip(-1))
        True
    """
    if kind == "shift":
        return shift(x)
    if kind == "flip":
        return x.flip(-1)
    if kind == "jpeg":
        return _jpeg(x, mean, std)
    if kind == "noise":
        seeds = list(seeds) if seeds is not None else [0] * x.shape[0]
        if len(seeds) != x.shape[0]:
            raise ValueError(f"{len(seeds)} noise seeds for {x.shape[0]} pictures")
        noise = torch.stack([torch.randn(x.shape[1:], generator=torch.Generator().manual_seed(int(s))) for s in seeds])
        return x + noise.to(device=x.device, dtype=x.dtype) * NOISE / _stats(std, x)
    raise ValueError(f"unknown nuisance {kind!r}; choose one of {', '.join(NUISANCES)}")


def carry_back(t: Tensor, kind: str) -> Tensor:
    """A mask or map ``(..., H, W)`` made on the changed picture, in the original picture's frame.

    After ``shift`` the original's last :data:`SHIFT` rows and columns have no counterpart (they left
    the picture) and are 0; compare inside :func:`common_window`."""
    if kind == "shift":
        return F.pad(t[..., SHIFT:, SHIFT:], (0, SHIFT, 0, SHIFT))
    if kind == "flip":
        return t.flip(-1)
    if kind in NUISANCES:
        return t
    raise ValueError(f"unknown nuisance {kind!r}; choose one of {', '.join(NUISANCES)}")


def common_window(kind: str, height: int, width: int) -> tuple[slice, slice]:
    """The rows and columns of the original frame that the changed picture also shows."""
    if kind == "shift":
        return slice(0, height - SHIFT), slice(0, width - SHIFT)
    return slice(0, height), slice(0, width)
