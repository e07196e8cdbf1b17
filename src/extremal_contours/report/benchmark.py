"""The report's contents for a ``benchmark`` folder: its run settings (``run.json``), its summary
tables (``summary.md``) and profile plot, a row per ``per_image.csv`` row, and each picture across
methods side by side (the small overlays under ``overlays/``, which folders made before they were
saved lack: the report then says so and shows the numbers)."""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from ..benchmark.overlays import OVERLAY_FOLDER, overlay_file
from ..benchmark.rows import ERRORS, MAPS, PER_IMAGE, STABILITY, read_table
from .contents import Column, Contents, Figure, Picture
from .markdown import escape, markdown_to_html
from .pictures import link

__all__ = ["COLUMNS", "from_benchmark", "is_benchmark"]

#: The table's columns: one row per (method, picture, area, seed), as ``per_image.csv``.
COLUMNS = [
    Column("picture", "picture"),
    Column("method", "method"),
    Column("label", "class", numeric=True),
    Column("area", "area", numeric=True),
    Column("seed", "seed", numeric=True),
    Column("preserve", "preserve ratio", numeric=True),
    Column("drop", "delete drop", numeric=True),
    Column("visible", "visible area", numeric=True),
    Column("pieces", "pieces", numeric=True),
    Column("holes", "holes", numeric=True),
    Column("clean", "clean probability", numeric=True),
    Column("seconds", "s / image", numeric=True),
]
#: Columns added where the folder has them: the mean IoU over the nuisances (``stability.csv``)
#: and the map's localisation (``maps.csv``, where the dataset has boxes).
STABILITY_COLUMN = Column("stability", "stability IoU", numeric=True)
MAP_COLUMNS = [Column("relevance_mass", "relevance mass", numeric=True), Column("pointing_game", "pointing game", numeric=True)]


def is_benchmark(folder: Path) -> bool:
    """Whether ``folder`` is a benchmark's output folder."""
    return (folder / PER_IMAGE.name).is_file() or ((folder / "run.json").is_file() and (folder / "summary.md").is_file())


def _number(text: Any) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def from_benchmark(out: Path) -> Contents:
    """The report of the benchmark folder ``out``."""
    rows = read_table(out, PER_IMAGE)
    contents = Contents(kind="benchmark", columns=list(COLUMNS))
    record = _run_record(out, contents)
    methods = _methods(record, rows)
    areas = sorted({r["area"] for r in rows}, key=float)
    contents.info += [("methods", ", ".join(methods)), ("areas", ", ".join(areas)), ("pictures", str(len({r["image"] for r in rows})))]
    contents.sections = _sections(out, contents)
    extra = _extra_columns(out, contents)
    has_overlays = (out / OVERLAY_FOLDER).is_dir()
    if not has_overlays:
        contents.notes.append(
            f"This folder has no {OVERLAY_FOLDER}/ (it was made before the benchmark saved a picture of each mask): "
            "the pictures show numbers only; a new run in another --out draws them."
        )
    pictures: dict[str, int] = {}
    first: dict[tuple[str, str, str], dict[str, str]] = {}  # (image, method, area) -> the first seed's row
    for row in rows:
        index = pictures.setdefault(row["image"], len(pictures))
        first.setdefault((row["image"], row["method"], row["area"]), row)
        cells: list[Any] = [row["image"], row["method"], _number(row["label"]), float(row["area"]), _number(row["seed"])]
        cells += [_number(row[k]) for k in ("preserve_ratio", "delete_drop", "visible_area", "pieces", "holes", "clean_probability", "seconds_per_image")]
        cells += [lookup(row) for lookup in extra]
        contents.rows.append((index, cells))
    for image in pictures:
        contents.pictures.append(_picture(out, image, methods, areas, first, has_overlays))
    return contents


def _run_record(out: Path, contents: Contents) -> dict[str, Any]:
    """``run.json`` (its settings into ``contents.info``); empty, with a note, when missing or damaged."""
    try:
        record = json.loads((out / "run.json").read_text())
    except (OSError, ValueError):
        contents.notes.append("no readable run.json: the run's settings are unknown")
        return {}
    if not isinstance(record, dict):
        return {}
    runs = record.get("runs") or [{}]
    last = runs[-1] if isinstance(runs[-1], dict) else {}
    contents.info += [
        ("model", str(record.get("model", "?"))),
        ("weights", str(record.get("weights") or "the model's own")),
        ("data", str(last.get("data", "?"))),
        ("runs", str(len(runs))),
    ]
    if record.get("random_target"):
        contents.info.append(("target", "a random class the model does not predict"))
    return record


def _methods(record: dict[str, Any], rows: list[dict[str, str]]) -> list[str]:
    """The methods in the order the runs named them, then any other the rows have."""
    present = {r["method"] for r in rows}
    named = [m for run in record.get("runs", []) if isinstance(run, dict) for m in run.get("methods", [])]
    return [m for m in dict.fromkeys([*named, *sorted(present)]) if m in present]


def _sections(out: Path, contents: Contents) -> str:
    """The summary tables and the profile plot, as HTML."""
    parts = []
    summary = out / "summary.md"
    if summary.is_file():
        parts.append('<section id="summary"><h2>Summary</h2>' + markdown_to_html(summary.read_text()) + "</section>")
    else:
        contents.notes.append("no summary.md yet (the run has not finished)")
    if (out / "profile.png").is_file():
        parts.append(
            '<section id="profile"><h2>Fidelity against area</h2>'
            f'<img class="plot" src="{escape(link(out / "profile.png", out))}" alt="fidelity-area profile per method" loading="lazy"></section>'
        )
    errors = read_table(out, ERRORS)
    if errors:
        items = "".join(f"<li>{escape(r['image'])}: {escape(r['error'])}</li>" for r in errors)
        parts.append(f'<section id="errors"><h2>Pictures that failed ({len(errors)})</h2><ul>{items}</ul></section>')
    return "\n".join(parts)


def _extra_columns(out: Path, contents: Contents) -> list[Any]:
    """Columns from ``stability.csv`` and ``maps.csv`` where they hold values: their lookups per row."""
    lookups: list[Any] = []
    stability: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for r in read_table(out, STABILITY):
        value = _number(r["iou"])
        if value is not None:
            stability[(r["method"], r["image"], r["area"])].append(value)
    if stability:
        contents.columns.append(STABILITY_COLUMN)
        means = {k: statistics.fmean(v) for k, v in stability.items()}
        lookups.append(lambda row: means.get((row["method"], row["image"], row["area"])))
    maps = {(r["method"], r["image"], r["seed"]): r for r in read_table(out, MAPS)}
    for column in MAP_COLUMNS:
        if any(_number(r[column.key]) is not None for r in maps.values()):
            contents.columns.append(column)
            lookups.append(lambda row, key=column.key: _number(maps.get((row["method"], row["image"], row["seed"]), {}).get(key)))
    return lookups


def _picture(
    out: Path, image: str, methods: list[str], areas: list[str], first: dict[tuple[str, str, str], dict[str, str]], has_overlays: bool
) -> Picture:
    """One picture: a thumbnail per method at the first area, a figure per method and area."""
    label = next((r["label"] for (i, _, _), r in first.items() if i == image), "?")
    picture = Picture(name=image, caption=f"class {label}")

    def src(method: str, area: str) -> str | None:
        path = overlay_file(out, method, image, float(area))
        return link(path, out) if has_overlays and path.is_file() else None

    for area in areas:
        for method in methods:
            row = first.get((image, method, area))
            if row is None:
                continue
            text = f"keeps {_fmt(_number(row['preserve_ratio']))}, drop {_fmt(_number(row['delete_drop']))}"
            picture.figures.append(Figure(method, src(method, area), lines=[text], group=f"area {area}"))
            if area == areas[0]:
                picture.thumbs.append((src(method, area), method))
                picture.lines.append(f"{method}: {text}")
    if len(areas) > 1:
        picture.lines.insert(0, f"area {areas[0]}:")
    return picture
