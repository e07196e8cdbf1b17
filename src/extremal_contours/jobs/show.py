"""The ``show`` job: list what saved results hold, and redraw one picture's masks and overlays.

Saved results are either an ``explain``/``sweep`` output folder (records found below it) or a result
store (``explain --store``). A picture is named by its stored name, or by its bare file name when no
other picture has it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image

from .._errors import first_line
from ..export import overlay
from ..images import load_image
from ..inputs import area_tag
from ..record import RECORD_FILE, read_record
from ..result import ContourResult
from ..store import contours_of, load_results, redraw
from ..viz import draw_legend, draw_overlay, mask_image
from .spec import JobError
from .store import STORE_FILE

__all__ = ["list_saved", "show_saved"]


def _store(results: Path) -> Path | None:
    """The result store ``results`` is or holds, else ``None`` (an output folder)."""
    if not results.exists():
        raise JobError(f"no result store or output folder at {results}")
    if results.is_file():
        return results
    return results / STORE_FILE if (results / STORE_FILE).is_file() else None


def _records(folder: Path) -> Iterator[tuple[str, Path, dict[str, Any]]]:
    """``(picture name, record file, record)`` of every explanation saved below ``folder``."""
    for path in sorted(folder.rglob(RECORD_FILE)):
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue  # a staging folder
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        name = (record.get("image") or {}).get("name") or path.parent.relative_to(folder).as_posix()
        yield str(name), path, record


def _pick(names: list[str], wanted: str) -> str:
    """The stored name ``wanted`` means: itself, or the one stored name with that file name."""
    if wanted in names:
        return wanted
    same = sorted({n for n in names if Path(n).name == wanted or Path(n).stem == wanted})
    if len(same) == 1:
        return same[0]
    if same:
        raise JobError(f"{wanted!r} names several pictures ({', '.join(same[:5])}); give the stored name")
    raise JobError(f"no saved explanation of {wanted!r} (show --list lists the names)")


def list_saved(results: Path) -> int:
    """Print a line per saved (picture, area): name, class, how much the region keeps, flags."""
    store = _store(results)
    if store is not None:
        rows = load_results(store)
        for row in sorted(rows, key=lambda r: (r["image"], r["area"], r["seed"])):
            ratio = row["preserve_probability"] / row["clean_probability"] if row["clean_probability"] else row["preserve_score"] / row["clean_score"]
            print(f"{row['image']}: area {row['area']:g} target {int(row['target'])} seed {int(row['seed'])} keeps {ratio:.0%}")
        print(f"{len({r['image'] for r in rows})} pictures, {len(rows)} explanations in {store}")
        return 0
    count, pictures = 0, set()
    for name, path, record in _records(results):
        label = record.get("target", {}).get("name") or record.get("target", {}).get("class", record.get("target", {}).get("score"))
        for entry in record.get("contours", []):
            flags = entry.get("flags") or []
            ratio = entry.get("preserve", {}).get("ratio")
            keeps = f"keeps {ratio:.0%}" if isinstance(ratio, (int, float)) else "keeps ?"
            print(f"{name}: area {entry.get('area'):g} {label} {keeps}" + (f" [{', '.join(flags)}]" if flags else "") + f" ({path.parent})")
            count += 1
        pictures.add(name)
    if not count:
        raise JobError(f"no saved explanations in {results}")
    print(f"{len(pictures)} pictures, {count} explanations in {results}")
    return 0


def show_saved(results: Path, image: str, out: Path, area: float | None = None) -> int:
    """Redraw the saved explanations of ``image`` (at ``area`` only, if given) into ``out``: a mask
    and an overlay (with its legend) per area, a line each; returns 0."""
    store = _store(results)
    if store is not None:
        return _show_stored(store, image, out, area)
    found = list(_records(results))
    name = _pick(sorted({n for n, _, _ in found}), image)
    out.mkdir(parents=True, exist_ok=True)
    shown = 0
    for _, path, _ in (f for f in found if f[0] == name):
        try:
            result = read_record(path)
        except ValueError as exc:
            raise JobError(first_line(exc)) from None
        for j, a in enumerate(result.areas):
            if area is not None and abs(a - area) > 1e-9:
                continue
            tag = f"{Path(name).stem}_{area_tag(a)}"
            mask_image(result.masks[0, j, 0].numpy()).save(out / f"mask_{tag}.png")
            overlay(result, 0, j, _canvas(result)).save(out / f"overlay_{tag}.png")
            print(f"{name}: area {a:g} keeps {float(result.preserve_ratio[0, j]):.0%} of the class -> {out / f'overlay_{tag}.png'}")
            shown += 1
    if not shown:
        raise JobError(f"no saved explanation of {name!r}" + (f" at area {area:g}" if area is not None else ""))
    return 0


def _canvas(result: ContourResult) -> Image.Image:
    """The picture an overlay is redrawn on: the saved model input (grey where there is none)."""
    if result.images is not None:
        return Image.fromarray(result.images[0].permute(1, 2, 0).numpy())
    h, w = result.image_size
    return Image.new("RGB", (w, h), (200, 200, 200))


def _show_stored(store: Path, image: str, out: Path, area: float | None) -> int:
    """Redraw stored rows (``explain --store``) of ``image``."""
    try:
        names = sorted({r["image"] for r in load_results(store)})
    except FileNotFoundError as exc:
        raise JobError(str(exc)) from exc
    image = _pick(names, image)
    rows = load_results(store, image=image)
    if area is not None:
        rows = [r for r in rows if abs(r["area"] - area) < 1e-9]
    if not rows:
        raise JobError(f"no stored explanation of {image!r}" + (f" at area {area:g}" if area is not None else ""))
    out.mkdir(parents=True, exist_ok=True)
    several_targets = len({int(r["target"]) for r in rows}) > 1
    for row in rows:
        tag = f"{Path(row['image']).stem}_area{row['area']:.4g}_seed{int(row['seed'])}"
        if several_targets:  # the same picture stored for several classes: one file each
            tag += f"_target{int(row['target'])}"
        ratio = (row["preserve_probability"] / row["clean_probability"]) if row["clean_probability"] else row["preserve_score"] / row["clean_score"]
        polygons = [c["polygon"] for c in contours_of(row)]
        mask_image(redraw(row).numpy()).save(out / f"mask_{tag}.png")
        legend: list[tuple[str | None, str]] = [(None, f"class {int(row['target'])}, area {row['area']:g}"), ("#E69F00", f"region: keeps {ratio:.0%} of the class")]
        draw_legend(draw_overlay(_picture(row), polygons), legend, avoid=polygons).save(out / f"overlay_{tag}.png")
        print(f"{row['image']}: target {int(row['target'])} area {row['area']:g} seed {int(row['seed'])} preserve {ratio:.2f} -> {out / f'overlay_{tag}.png'}")
    return 0


def _picture(row: dict[str, Any]) -> Image.Image:
    """The stored row's picture at the size it was explained (grey where the file is gone)."""
    size = (int(row["width"]), int(row["height"]))
    if row["source"] and Path(row["source"]).is_file():
        picture, _ = load_image(row["source"])
        return picture.resize(size)
    return Image.new("RGB", size, (200, 200, 200))
