"""Checks at the door: the images, areas and variants every explainer takes, each refused in one line.

This module imports nothing else of this package.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["MIN_REGION_PIXELS", "MIN_SIDE", "VARIANTS", "area_tag", "check_areas", "check_images", "check_variant", "is_area_tag"]

#: The games a mask can play: keep the evidence inside it, remove it, or both at once.
VARIANTS = ("preserve", "delete", "dual")

#: Smallest image side the explainers accept (a region needs room for its edge).
MIN_SIDE = 16

#: Fewest pixels a region may cover: below this an area has nothing to show.
MIN_REGION_PIXELS = 16


def area_tag(area: float) -> str:
    """The name an area's files carry (4 significant digits), e.g. ``area0.1``."""
    return f"area{area:.4g}"


def is_area_tag(name: str) -> bool:
    """Whether ``name`` is what :func:`area_tag` makes of an area in (0, 1), e.g. an area's folder."""
    number = name.removeprefix("area")
    try:
        area = float(number)
    except ValueError:
        return False
    return name.startswith("area") and 0 < area < 1 and area_tag(area) == name


def check_images(x: Any) -> Tensor:
    """``x`` if it is a non-empty, finite, floating-point batch ``(N, C, H, W)`` of images at least
    :data:`MIN_SIDE` pixels a side."""
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a tensor (N, C, H, W), got {type(x).__name__}")
    if x.dim() == 3:
        raise ValueError(f"x must be a batch (N, C, H, W); got one image {tuple(x.shape)}: use x[None]")
    if x.dim() != 4:
        raise ValueError(f"x must be a batch (N, C, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor (the model's normalised input), got {x.dtype}")
    if x.shape[0] == 0:
        raise ValueError("x is an empty batch")
    if min(x.shape[-2:]) < MIN_SIDE:
        raise ValueError(f"images of {x.shape[-2]}x{x.shape[-1]} px are too small; at least {MIN_SIDE} px per side")
    if not torch.isfinite(x).all():
        bad = (~torch.isfinite(x)).flatten(1).any(1).nonzero()[:, 0].tolist()
        raise ValueError(f"x contains NaN or infinite values (images {bad})")
    return x


def check_areas(areas: Any, height: int, width: int) -> tuple[float, ...]:
    """The areas as distinct fractions in (0, 1) (distinct to 4 significant digits, as their files are
    named), each covering at least :data:`MIN_REGION_PIXELS` of a ``height x width`` image."""
    if isinstance(areas, (int, float)) and not isinstance(areas, bool):
        areas = (areas,)
    try:
        values = tuple(float(a) for a in areas)
    except (TypeError, ValueError):
        raise TypeError(f"areas must be a sequence of fractions in (0, 1), got {areas!r}") from None
    if not values or any(not (0.0 < a < 1.0) for a in values):
        raise ValueError(f"areas must be fractions in (0, 1), got {values}")
    tags = [area_tag(a) for a in values]
    if len(set(tags)) != len(tags):
        raise ValueError(f"areas must be distinct (to 4 significant digits), got {values}")
    small = [a for a in values if a * height * width < MIN_REGION_PIXELS]
    if small:
        raise ValueError(
            f"area {small[0]:g} covers under {MIN_REGION_PIXELS} pixels of a {height}x{width} image; "
            f"use at least {MIN_REGION_PIXELS / (height * width):.2g}"
        )
    return values


def check_variant(variant: Any) -> str:
    """``variant`` if it is one of :data:`VARIANTS`."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    return str(variant)
