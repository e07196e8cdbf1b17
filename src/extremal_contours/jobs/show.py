"""The ``show`` job: redraw stored explanations (masks and overlays) from a result store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from ..images import load_image
from ..store import contours_of, load_results, redraw
from ..viz import draw_overlay, mask_image
from .spec import JobError
from .store import STORE_FILE

__all__ = ["show_stored"]


def show_stored(results: Path, image: str, out: Path, area: float | None = None) -> int:
    """Redraw the stored explanations of the picture ``image`` (at ``area`` only, if given) from
    the store ``results`` (the file or its folder) into ``out``, a line each; returns 0."""
    try:
        rows = load_results(results / STORE_FILE if results.is_dir() else results, image=image)
    except FileNotFoundError as exc:
        raise JobError(str(exc)) from exc
    if area is not None:
        rows = [r for r in rows if abs(r["area"] - area) < 1e-9]
    if not rows:
        raise JobError(f"no stored explanation of {image!r}" + (f" at area {area}" if area is not None else ""))
    out.mkdir(parents=True, exist_ok=True)
    several_targets = len({int(r["target"]) for r in rows}) > 1
    for row in rows:
        tag = f"{Path(row['image']).stem}_area{row['area']:.4g}_seed{int(row['seed'])}"
        if several_targets:  # the same picture stored for several classes: one file each
            tag += f"_target{int(row['target'])}"
        mask_image(redraw(row).numpy()).save(out / f"mask_{tag}.png")
        draw_overlay(_picture(row), [c["polygon"] for c in contours_of(row)]).save(out / f"overlay_{tag}.png")
        ratio = (row["preserve_probability"] / row["clean_probability"]) if row["clean_probability"] else row["preserve_score"] / row["clean_score"]
        print(f"{row['image']}: target {int(row['target'])} area {row['area']:g} seed {int(row['seed'])} preserve {ratio:.2f} -> {out / f'overlay_{tag}.png'}")
    return 0


def _picture(row: dict[str, Any]) -> Image.Image:
    """The stored row's picture at the size it was explained (grey where the file is gone)."""
    size = (int(row["width"]), int(row["height"]))
    if row["source"] and Path(row["source"]).is_file():
        picture, _ = load_image(row["source"])
        return picture.resize(size)
    return Image.new("RGB", size, (200, 200, 200))
