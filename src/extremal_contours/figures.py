"""Matplotlib figures of sweeps: the importance contour map, the fidelity-area profile and a one-page
summary per image. Headless (Agg) unless a backend is chosen already (in Jupyter the figures show
inline); reads results, never runs a model.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .result import ContourResult
from .sweep import importance_map, profile, smallest_sufficient_area
from .viz import PALETTE

__all__ = ["draw_importance", "draw_profile", "summary_figure"]


def _plt() -> Any:
    """pyplot on the headless Agg backend, unless a backend is chosen already: by ``MPLBACKEND``
    (a Jupyter kernel sets its inline one there) or by pyplot being in use. Switching a notebook to
    Agg would stop every later figure of it from showing."""
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules and not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _picture(result: ContourResult, i: int) -> np.ndarray:
    if result.images is None:
        h, w = result.image_size
        return np.full((h, w, 3), 200, dtype=np.uint8)
    return result.images[i].permute(1, 2, 0).numpy()


def draw_importance(ax: Any, result: ContourResult, i: int = 0) -> None:
    """The image with the sweep's regions as filled bands (darker = enters at a smaller area) and
    each region's outline labelled with its area."""
    areas = list(result.areas)
    imap = importance_map(result.masks[i : i + 1], areas)[0, 0].numpy()
    picture = _picture(result, i)
    ax.imshow(picture)
    order = sorted(areas)
    # Level 1 - a separates "inside the region of area a" from outside it.
    levels = sorted(1 - a for a in order)
    cmap = _plt().get_cmap("viridis_r")
    bands = [0.0, *levels, 1.0]
    ax.contourf(imap, levels=bands, cmap=cmap, alpha=0.45, antialiased=True)
    lines = ax.contour(imap, levels=levels, colors="white", linewidths=1.0)
    ax.clabel(lines, fmt={lv: f"{1 - lv:.2g}" for lv in levels}, fontsize=7, inline=True)
    ax.set_title("importance contour map (labels: area)", fontsize=9)
    ax.axis("off")


def draw_profile(ax: Any, result: ContourResult, i: int = 0, level: float = 0.9) -> float | None:
    """Preserve ratio and delete drop against area; marks the smallest area keeping ``level``."""
    rows = profile(result, i)
    areas = [r["area"] for r in rows]
    ax.plot(areas, [r["preserve_ratio"] for r in rows], "o-", color=PALETTE[4], label="preserve ratio (region kept)")
    ax.plot(areas, [r["delete_drop"] for r in rows], "s--", color=PALETTE[5], label="delete drop (region removed)")
    ax.axhline(level, color="grey", linewidth=0.8, linestyle=":")
    best = smallest_sufficient_area(rows, level)
    if best is not None:
        ax.axvline(best, color=PALETTE[2], linewidth=1.2)
        ax.text(best, 0.02, f" {level:.0%} kept at area {best:.2g}", color=PALETTE[2], fontsize=8, va="bottom")
    ax.set_xscale("log")
    ax.set_xticks(areas)
    ax.set_xticklabels([f"{a:g}" for a in areas], fontsize=7)
    ax.minorticks_off()
    ax.set_xlabel("area (fraction of the image)", fontsize=8)
    ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]))
    ax.set_title("fidelity-area profile", fontsize=9)
    ax.legend(fontsize=7, loc="center right")
    ax.grid(alpha=0.3)
    return best


def summary_figure(
    result: ContourResult,
    path: str | os.PathLike[str],
    i: int = 0,
    area: float | None = None,
    title: str | None = None,
    level: float = 0.9,
) -> Path:
    """One page per image: the image, its region at ``area`` (default: the smallest sweep area
    keeping ``level`` of the clean score, else 0.1 or the nearest), the importance map and the
    profile. Saved as PNG."""
    plt = _plt()
    rows = profile(result, i)
    if area is None:
        area = smallest_sufficient_area(rows, level)
    if area is None:
        area = min(result.areas, key=lambda a: abs(a - 0.1))
    j = min(range(len(result.areas)), key=lambda k: abs(result.areas[k] - area))
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.3), constrained_layout=True)
    picture = _picture(result, i)
    axes[0].imshow(picture)
    axes[0].set_title("image", fontsize=9)
    axes[0].axis("off")
    axes[1].imshow(picture)
    for k, poly in enumerate(result.outlines(i, j)):  # one outline per contour of the region
        closed = np.vstack([poly, poly[:1]])
        colour = PALETTE[k % len(PALETTE)]
        axes[1].fill(closed[:, 0], closed[:, 1], color=colour, alpha=0.25)
        axes[1].plot(closed[:, 0], closed[:, 1], color="black", linewidth=2.6)
        axes[1].plot(closed[:, 0], closed[:, 1], color=colour, linewidth=1.6)
    axes[1].set_title(
        f"region, area {result.areas[j]:g}: keeps {float(result.preserve_ratio[i, j]):.0%}", fontsize=9
    )
    axes[1].axis("off")
    draw_importance(axes[2], result, i)
    draw_profile(axes[3], result, i, level)
    if title is None:
        label = result.label(i)
        name = result.names[i] if result.names else f"image {i}"
        title = f"{name}: {label}"
    fig.suptitle(title, fontsize=11)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def save_sweep(result: ContourResult, folder: str | os.PathLike[str], level: float = 0.9, names: Sequence[str] | None = None) -> list[Path]:
    """For each image: ``importance.png``, ``profile.png``, ``profile.csv`` and ``summary.png`` in
    ``folder`` (one sub-folder per image when there are several)."""
    from .sweep import write_profile_csv

    plt = _plt()
    base = Path(folder)
    out = []
    for i in range(result.num_images):
        target = base if result.num_images == 1 else base / (names[i] if names else (result.names[i] if result.names else str(i)))
        target.mkdir(parents=True, exist_ok=True)
        fig, ax = plt.subplots(figsize=(5, 5), constrained_layout=True)
        draw_importance(ax, result, i)
        fig.savefig(target / "importance.png", dpi=110)
        plt.close(fig)
        fig, ax = plt.subplots(figsize=(5, 3.6), constrained_layout=True)
        draw_profile(ax, result, i, level)
        fig.savefig(target / "profile.png", dpi=110)
        plt.close(fig)
        write_profile_csv(profile(result, i), target / "profile.csv")
        summary_figure(result, target / "summary.png", i, level=level)
        out.append(target)
    return out


def method_profiles(rows: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """The fidelity-area profile of every method of a benchmark: median preserve ratio and mean
    delete drop against area, one line per method. ``rows`` are ``per_image.csv`` rows."""
    plt = _plt()
    methods = sorted({r["method"] for r in rows})
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    for k, method in enumerate(methods):
        by_area: dict[float, list[dict[str, Any]]] = {}
        for r in rows:
            if r["method"] == method:
                by_area.setdefault(float(r["area"]), []).append(r)
        areas = sorted(by_area)
        keep = [float(np.median([float(r["preserve_ratio"]) for r in by_area[a]])) for a in areas]
        drop = [float(np.mean([float(r["delete_drop"]) for r in by_area[a]])) for a in areas]
        style = {"color": PALETTE[k % len(PALETTE)], "marker": "os^vD<>"[k % 7], "label": method, "linewidth": 1.8}
        axes[0].plot(areas, keep, **style)
        axes[1].plot(areas, drop, **style)
    for ax, name in zip(axes, ("preserve ratio (median)", "delete drop (mean)"), strict=True):
        ax.set_xlabel("area (fraction of the image)")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[0].axhline(1.0, color="grey", linewidth=0.8, linestyle=":")
    axes[1].legend(fontsize=8, loc="best")
    fig.suptitle("fidelity against area, per method", fontsize=10)
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
