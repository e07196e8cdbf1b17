"""Perturbations: a mask blends each image with a perturbed copy of itself.

A perturbation is built once for a batch of images ``(N, C, H, W)`` (in the model's input space)
and then applied to masks ``(B, 1, H, W)`` whose rows point at images through ``index (B,)``:
``mask = 1`` keeps the image, ``mask = 0`` replaces it by the perturbed copy. Deleting a region
is applying ``1 - mask``.

- ``blur`` (default, Fong et al. 2019): a pyramid of Gaussian blurs, ``sigma`` from ``max_sigma``
  (mask 0) down to 0 (mask 1) in equal steps; the mask picks the level by linear interpolation.
  The kernel reaches ``truncate`` sigmas; the border is padded by reflection (default) or with
  zeros (``padding="zeros"``, which fades the border towards 0 of the input space, as TorchRay's
  reference implementation of Extremal Perturbations does with ``truncate=4``). The two levels
  around a mask value are blended as ``y0 + t (y1 - y0)`` (``blend="lerp"``, default) or as
  ``(1 - t) y0 + t y1`` with the level above the last clamped (``blend="reference"``, TorchRay's
  arithmetic: the same values to rounding, and no gradient where the mask is exactly 1).
- ``constant``: blend towards a fill value (a number, one per channel, or ``"mean"``, the image's
  own mean colour).
- ``fade``: blend towards 0 of the model's input space, i.e. the normalisation mean colour.

This module imports nothing else of this package.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["BLENDS", "PADDINGS", "PERTURBATIONS", "Perturbation", "blur_pyramid", "make_perturbation", "separable_gaussian_blur"]

PERTURBATIONS = ("blur", "constant", "fade")


#: How :func:`blur_pyramid` pads the border.
PADDINGS = ("reflect", "zeros")
#: How a mask value between two pyramid levels blends them (see the module's documentation).
BLENDS = ("lerp", "reference")


def blur_pyramid(x: Tensor, levels: int = 8, max_sigma: float = 20.0, *, truncate: float = 3.0, padding: str = "reflect") -> Tensor:
    """Gaussian blurs of ``x`` with ``sigma = max_sigma * (1 - l / (levels - 1))``.

    Args:
        x: ``(N, C, H, W)`` images.
        levels: number of levels (at least 2); level ``levels - 1`` is ``x`` itself.
        max_sigma: blur of level 0, in pixels.
        truncate: the kernel's half-width, ``ceil(truncate * sigma)`` pixels.
        padding: ``"reflect"`` (the half-width is then kept below the image's side) or ``"zeros"``.

    Returns:
        ``(N, levels, C, H, W)``.

    Example:
        >>> blur_pyramid(torch.rand(2, 3, 32, 32), levels=4).shape
        torch.Size([2, 4, 3, 32, 32])
    """
    if levels < 2:
        raise ValueError(f"blur_pyramid needs at least 2 levels, got {levels}")
    if padding not in PADDINGS:
        raise ValueError(f"unknown padding {padding!r}; choose one of {', '.join(PADDINGS)}")
    if not truncate > 0:
        raise ValueError(f"truncate must be > 0, got {truncate}")
    if padding == "zeros":
        return torch.stack([_zero_padded_blur(x, level, levels, max_sigma, truncate) for level in range(levels)], 1)
    out = []
    for level in range(levels):
        sigma = max_sigma * (1 - level / (levels - 1))
        if sigma <= 0:
            out.append(x)
            continue
        # Reflection needs the half-width below the image's side.
        half = min(math.ceil(truncate * sigma), min(x.shape[-2:]) - 1)
        out.append(separable_gaussian_blur(x, half, sigma))
    return torch.stack(out, 1)


def _zero_padded_blur(x: Tensor, level: int, levels: int, max_sigma: float, truncate: float) -> Tensor:
    """Level ``level`` of a zero-padded pyramid in the arithmetic of TorchRay's ``imsmooth``, bit for
    bit: ``sigma`` from a float32 ``linspace``, the kernel ``exp(-(t / (sqrt(2) sigma + eps))^2)`` in
    float32, one grouped convolution per axis, vertical first (the reference protocol of dense
    Extremal Perturbations reproduces the reference exactly with it)."""
    sigma = (1 - torch.linspace(0, 1, levels)[level]) * max_sigma
    half = math.ceil(truncate * float(sigma))
    t = torch.arange(-half, half + 1, dtype=torch.float32, device=x.device)
    root2 = torch.tensor(math.sqrt(2.0), dtype=torch.float64).to(torch.float32)
    eps = torch.tensor(torch.finfo(torch.float32).eps, dtype=torch.float32)
    kernel = torch.exp(-((t / (root2 * sigma + eps).to(x.device)) ** 2))
    kernel = (kernel / kernel.sum()).to(x.dtype)
    c = x.shape[1]
    x = F.conv2d(x, kernel.reshape(1, 1, -1, 1).expand(c, -1, -1, -1), padding=(half, 0), groups=c)
    return F.conv2d(x, kernel.reshape(1, 1, 1, -1).expand(c, -1, -1, -1), padding=(0, half), groups=c)


def separable_gaussian_blur(x: Tensor, half: int, sigma: float) -> Tensor:
    """Gaussian blur of ``(N, C, H, W)`` with a ``2 * half + 1`` kernel and reflect padding, as two 1-D
    passes: the same result as ``torchvision``'s ``gaussian_blur`` (tested), which convolves with the
    full 2-D kernel and costs ``2 * half + 1`` times more (0.8 s per 224 x 337 pyramid on 2 CPU cores,
    as much as 20 steps of the model)."""
    n, c, h, w = x.shape
    t = torch.arange(-half, half + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    flat = x.reshape(n * c, 1, h, w)
    flat = F.conv2d(F.pad(flat, [half, half, 0, 0], mode="reflect"), kernel.view(1, 1, 1, -1))
    flat = F.conv2d(F.pad(flat, [0, 0, half, half], mode="reflect"), kernel.view(1, 1, -1, 1))
    return flat.view(n, c, h, w)


class Perturbation:
    """Blends images with their perturbed copies under a mask.

    Args:
        x: ``(N, C, H, W)`` images in the model's input space.
        kind: ``"blur"``, ``"constant"`` or ``"fade"``.
        levels, max_sigma, truncate, padding: the blur pyramid (``blur`` only; see :func:`blur_pyramid`).
        blend: ``"lerp"`` or ``"reference"`` (``blur`` only; see the module's documentation).
        fill: ``"mean"``, a number or one number per channel (``constant`` only).

    Example:
        >>> x = torch.rand(2, 3, 32, 32)
        >>> p = Perturbation(x, "constant", fill=0.0)
        >>> mask = torch.zeros(1, 1, 32, 32)
        >>> p(mask, torch.tensor([1])).abs().sum()
        tensor(0.)
    """

    def __init__(
        self,
        x: Tensor,
        kind: str = "blur",
        *,
        levels: int = 8,
        max_sigma: float = 20.0,
        truncate: float = 3.0,
        padding: str = "reflect",
        blend: str = "lerp",
        fill: str | float | Sequence[float] = "mean",
    ) -> None:
        if x.dim() != 4:
            raise ValueError(f"Perturbation expects images (N, C, H, W), got shape {tuple(x.shape)}")
        if kind not in PERTURBATIONS:
            raise ValueError(f"unknown perturbation {kind!r}; choose one of {', '.join(PERTURBATIONS)}")
        if blend not in BLENDS:
            raise ValueError(f"unknown blend {blend!r}; choose one of {', '.join(BLENDS)}")
        self.kind = kind
        self.blend = blend
        self.x = x
        #: The options it was built with: ``Perturbation(other, p.kind, **p.options)`` perturbs other
        #: images the same way.
        self.options = {"levels": levels, "max_sigma": max_sigma, "truncate": truncate, "padding": padding, "blend": blend, "fill": fill}
        n, c, h, w = x.shape
        if kind == "blur":
            pyramid = blur_pyramid(x, levels, max_sigma, truncate=truncate, padding=padding)
            self.levels = levels
            # (N * L, C, H * W): one row per (image, level) so a single gather picks per pixel.
            self._table = pyramid.reshape(n * levels, c, h * w)
        else:
            if kind == "fade":
                base = torch.zeros_like(x)
            elif isinstance(fill, str):
                if fill != "mean":
                    raise ValueError(f"fill must be 'mean', a number or one number per channel, got {fill!r}")
                base = x.mean((2, 3), keepdim=True).expand_as(x)
            else:
                value = torch.as_tensor(fill, dtype=x.dtype, device=x.device).reshape(-1)
                if value.numel() not in (1, c):
                    raise ValueError(f"fill has {value.numel()} values; the images have {c} channels")
                base = value.reshape(1, -1, 1, 1).expand_as(x)
            self._base = base.contiguous()

    def __call__(self, mask: Tensor, index: Tensor) -> Tensor:
        """Perturbed images ``(B, C, H, W)`` for masks ``(B, 1, H, W)`` of images ``index (B,)``."""
        if self.kind != "blur":
            base = self._base[index]
            return base + mask * (self.x[index] - base)
        b = mask.shape[0]
        _, c, hw = self._table.shape
        pos = mask.reshape(b, 1, hw) * (self.levels - 1)
        first = (index * self.levels).view(b, 1, 1)
        if self.blend == "reference":
            low = pos.detach().floor()
            frac = pos - low
            above = (low + 1).clamp(max=self.levels - 1)
            y0 = torch.gather(self._table, 0, (low.long() + first).expand(b, c, hw))
            y1 = torch.gather(self._table, 0, (above.long() + first).expand(b, c, hw))
            return ((1 - frac) * y0 + frac * y1).view(b, c, *self.x.shape[2:])
        low = pos.detach().floor().clamp_(max=self.levels - 2)
        frac = pos - low
        rows = (low.long() + first).expand(b, c, hw)
        y0 = torch.gather(self._table, 0, rows)
        y1 = torch.gather(self._table, 0, rows + 1)
        return (y0 + frac * (y1 - y0)).view(b, c, *self.x.shape[2:])


def make_perturbation(x: Tensor, kind: str = "blur", **options: object) -> Perturbation:
    """Build a :class:`Perturbation` (``options`` as its keyword arguments)."""
    return Perturbation(x, kind, **options)  # type: ignore[arg-type]
