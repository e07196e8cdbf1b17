"""The report's contents for explanations: the records of an ``explain`` or ``sweep`` output tree
(every ``explanation.json`` below the folder) and the rows of an ``explain --store`` database.

``explain`` writes each area of a picture in its own folder (``PICTURE/area0.1/``): records in
sibling ``area*`` folders are one picture, a card with a row and a figure per area.

Records are read as plain JSON (the masks are not redrawn: the folder's overlay files are shown), so
a report of thousands of pictures takes seconds. ``flags`` and ``alternatives`` of a region are
shown where a record has them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._errors import first_line
from ..inputs import area_tag, is_area_tag
from ..record import FORMAT, RECORD_FILE
from ..store import contours_of, load_results
from .contents import Column, Contents, Figure, Picture
from .pictures import drawn_thumbnail, link, open_small, outline_path, thumbnail_of_file

__all__ = ["COLUMNS", "from_records", "from_store", "record_files"]

#: The table's columns: one row per picture and area.
COLUMNS = [
    Column("picture", "picture"),
    Column("folder", "folder"),
    Column("class", "class"),
    Column("clean", "clean probability", numeric=True),
    Column("area", "area", numeric=True),
    Column("preserve", "preserve ratio", numeric=True),
    Column("drop", "delete drop", numeric=True),
    Column("visible", "visible area", numeric=True),
    Column("contours", "contours", numeric=True),
    Column("flags", "flags"),
    Column("alternatives", "alternatives", numeric=True),
]

#: Figures a sweep writes beside its record, shown in the large view.
SWEEP_FIGURES = (("importance.png", "importance map"), ("profile.png", "fidelity-area profile"))
#: A card's thumbnail shows the region of the area nearest this one.
THUMBNAIL_AREA = 0.1
#: The figure ``explain --area auto`` writes in the picture's folder, above its areas' folders.
AUTO_FIGURES = (("summary.png", "summary of the areas"),)


def _number(value: Any) -> float | None:
    """A finite number, else ``None`` (written as a dash)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def record_files(root: Path) -> list[Path]:
    """Every record below ``root`` (hidden folders left out), in path order."""
    return sorted(p for p in root.rglob(RECORD_FILE) if not any(q.startswith(".") for q in p.relative_to(root).parts))


def from_records(root: Path, paths: Iterable[Path]) -> Contents:
    """The report of the records ``paths`` below ``root``; a record that cannot be read is a note."""
    contents = Contents(kind="explanations", columns=COLUMNS)
    cards: dict[Path, _Card] = {}  # a picture's folder -> its card
    for path in paths:
        try:
            record = json.loads(path.read_text())
            if not isinstance(record, dict) or record.get("format") != FORMAT:
                raise ValueError(f"not an extremal-contours record (format {record.get('format')!r})" if isinstance(record, dict) else "not a JSON object")
            _add_record(contents, root, path.parent, record, cards)
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            contents.notes.append(f"{link(path, root)}: skipped, {first_line(exc)}")
    for card in cards.values():  # each thumbnail drawn once, from the record its card chose
        try:
            contents.pictures[card.index].thumbs = [(_record_thumbnail(card.folder, card.record), "")]
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            contents.notes.append(f"{link(card.folder / RECORD_FILE, root)}: no thumbnail, {first_line(exc)}")
    return contents


@dataclass
class _Card:
    """A picture's card while its records are read: where it is, and the record whose region its
    thumbnail will show (the area nearest :data:`THUMBNAIL_AREA` so far)."""

    index: int
    distance: float
    folder: Path
    record: dict[str, Any]


def picture_folder(folder: Path, root: Path) -> Path:
    """The folder of the picture a record's ``folder`` belongs to: its parent for an area's folder."""
    return folder.parent if folder != root and is_area_tag(folder.name) else folder


def _label(target: dict[str, Any]) -> str:
    """The class a record explains: its name and index where known."""
    if "name" in target and "class" in target:
        return f"{target['name']} ({target['class']})"
    if "class" in target:
        return f"class {target['class']}"
    return str(target.get("name") or target.get("score", "?"))


def _preserve_of(alternative: Any) -> float | None:
    """An alternative's preserve ratio (a number, or ``{"ratio": ...}``)."""
    if isinstance(alternative, dict):
        value = alternative.get("preserve")
        return _number(value.get("ratio") if isinstance(value, dict) else value)
    return None


def _add_record(contents: Contents, root: Path, folder: Path, record: dict[str, Any], cards: dict[Path, _Card]) -> None:
    """A record's areas (a row and a figure each) on its picture's card, the card made by the
    picture's first record; the thumbnail shows the region of the area nearest 0.1."""
    height, width = int(record["image"]["height"]), int(record["image"]["width"])
    home = picture_folder(folder, root)
    name = record["image"].get("name") or home.name
    where = "." if home == root else Path(link(home, root)).as_posix()
    label, clean = _label(record["target"]), _number(record["clean"].get("probability"))
    nearest = abs(float(_thumbnail_contour(record)["area"]) - THUMBNAIL_AREA)
    if home not in cards:
        picture = Picture(name=name, caption=f"{label}, clean p={_fmt(clean)}")
        picture.figures = [Figure(title, link(home / file, root)) for file, title in AUTO_FIGURES if home != folder and (home / file).is_file()]
        cards[home] = _Card(len(contents.pictures), nearest, folder, record)
        contents.pictures.append(picture)
    card = cards[home]
    if nearest < card.distance:
        card.distance, card.folder, card.record = nearest, folder, record
    index, picture = card.index, contents.pictures[card.index]
    for contour in record["contours"]:
        area = float(contour["area"])
        preserve, drop = _number(contour["preserve"]["ratio"]), _number(contour["delete"]["drop"])
        flags = [str(f) for f in contour.get("flags") or [] if isinstance(f, str)]
        alternatives = [a for a in contour.get("alternatives") or [] if isinstance(a, dict)]
        count = len(contour["parts"]) if contour.get("parts") else 1
        contents.rows.append(
            (index, [name, where, label, clean, area, preserve, drop, _number(contour.get("visible_area")), count, " ".join(flags), len(alternatives)])
        )
        text = f"area {area:g}: keeps {_fmt(preserve)}, drop {_fmt(drop)}"
        picture.lines.append(text + (f" [{', '.join(flags)}]" if flags else ""))
        picture.flags += [f for f in flags if f not in picture.flags]
        picture.figures.append(_area_figure(root, folder, contour, (width, height), text, flags, alternatives))
    if home == folder:  # a sweep's own figures first: they sum up all its areas
        picture.figures[:0] = [Figure(title, link(folder / file, root)) for file, title in SWEEP_FIGURES if (folder / file).is_file()]


def _area_figure(
    root: Path, folder: Path, contour: dict[str, Any], size: tuple[int, int], text: str, flags: list[str], alternatives: list[dict[str, Any]]
) -> Figure:
    """The large view's figure of one area: the overlay file (else the input, outlined), the
    alternatives' outlines dashed over it."""
    overlay = folder / f"overlay_{area_tag(float(contour['area']))}.png"
    figure = Figure(title=text, src=None, width=size[0], height=size[1])
    if overlay.is_file():
        figure.src = link(overlay, root)
    else:
        figure.src = link(folder / "input.png", root) if (folder / "input.png").is_file() else None
        figure.outlines += [(outline_path(p["polygon_px"]), "main") for p in contour.get("parts") or [contour]]
    if flags:
        figure.lines.append("flags: " + ", ".join(flags))
    for k, alternative in enumerate(alternatives, 1):
        if alternative.get("polygon_px"):
            figure.outlines.append((outline_path(alternative["polygon_px"]), "alt"))
        figure.lines.append(f"alternative {k}: keeps {_fmt(_preserve_of(alternative))} (dashed)")
    return figure


def _thumbnail_contour(record: dict[str, Any]) -> dict[str, Any]:
    """The region of a record that its picture's thumbnail shows: the area nearest :data:`THUMBNAIL_AREA`."""
    return min(record["contours"], key=lambda c: abs(float(c["area"]) - THUMBNAIL_AREA))


def _record_thumbnail(folder: Path, record: dict[str, Any]) -> str | None:
    """A thumbnail of the region at the area nearest 0.1: drawn on the small ``input.png`` (a
    millisecond, where the overlay on a large original takes tens), else the overlay file's."""
    contour = _thumbnail_contour(record)
    size = int(record["image"]["width"]), int(record["image"]["height"])
    polygons = [p["polygon_px"] for p in contour.get("parts") or [contour]]
    picture = open_small(folder / "input.png", size) if (folder / "input.png").is_file() else None
    if picture is not None:
        return drawn_thumbnail(picture, size, polygons)
    overlay = folder / f"overlay_{area_tag(float(contour['area']))}.png"
    if overlay.is_file():
        return thumbnail_of_file(overlay)
    return drawn_thumbnail(None, size, polygons)


def from_store(root: Path, store: Path) -> Contents:
    """The report of the rows of a result store: a picture per (image, class, method, seed,
    settings), drawn on its source picture where that still exists."""
    contents = Contents(kind="explanations", columns=COLUMNS)
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in load_results(store):
        groups.setdefault((row["image"], row["target"], row["method"], row["seed"], row["settings_key"]), []).append(row)
    several = {key[0] for key in groups if sum(k[0] == key[0] for k in groups) > 1}
    for (image, target, method, seed, _), rows in groups.items():
        tag = f" ({method}, seed {seed}, class {target})" if image in several else ""
        _add_stored(contents, root, f"{image}{tag}", rows)
    return contents


def _ratios(row: dict[str, Any]) -> tuple[float | None, float | None]:
    """A stored row's preserve ratio and delete drop (of probabilities where stored)."""
    base: float | None = _number(row["clean_probability"])
    if base:
        keep, gone = _number(row["preserve_probability"]), _number(row["delete_probability"])
    else:
        keep, gone, base = _number(row["preserve_score"]), _number(row["delete_score"]), _number(row["clean_score"])
    if not base:
        return None, None
    return (keep / base if keep is not None else None), (1 - gone / base if gone is not None else None)


def _add_stored(contents: Contents, root: Path, name: str, rows: list[dict[str, Any]]) -> None:
    """One picture of the store (its rows: one per area)."""
    first = rows[0]
    size = (int(first["width"]), int(first["height"]))
    source = Path(first["source"]) if first.get("source") else None
    found = source is not None and source.is_file()
    label, clean = f"class {first['target']}", _number(first["clean_probability"])
    picture = Picture(name=name, caption=f"{label}, clean p={_fmt(clean)}")
    if not found:
        picture.lines.append("the source picture is gone: outlines on grey")
    index = len(contents.pictures)
    for row in rows:
        preserve, drop = _ratios(row)
        pieces = contours_of(row)
        contents.rows.append(
            (index, [name, "store", label, clean, float(row["area"]), preserve, drop, _number(row["visible_area"]), len(pieces), "", 0])
        )
        text = f"area {float(row['area']):g}: keeps {_fmt(preserve)}, drop {_fmt(drop)}"
        picture.lines.append(text)
        outlines = [(outline_path(p["polygon"]), "main") for p in pieces]
        src = link(source, root) if found and source is not None else None
        picture.figures.append(Figure(text, src, size[0], size[1], outlines))
    nearest = min(rows, key=lambda r: abs(float(r["area"]) - THUMBNAIL_AREA))
    canvas = open_small(source, size) if found and source is not None else None
    picture.thumbs = [(drawn_thumbnail(canvas, size, [p["polygon"] for p in contours_of(nearest)]), "")]
    contents.pictures.append(picture)
