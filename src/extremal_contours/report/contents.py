"""What a report shows, whatever folder it was made from: pictures (a card each, and a large view
of figures), the rows of its table, notes and, for a benchmark, sections of summary tables."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Column", "Contents", "Figure", "Picture"]


@dataclass(frozen=True)
class Column:
    """A column of the report's table; ``numeric`` columns sort by value."""

    key: str
    label: str
    numeric: bool = False


@dataclass
class Figure:
    """One picture of a large view: ``src`` (a link or a data URI; ``None``: none), outlines drawn
    over it as SVG paths in the pixels of a ``width`` x ``height`` picture (``kind``: ``"main"`` or
    ``"alt"``, drawn dashed), and lines of text under it; figures of one ``group`` (e.g. a
    benchmark's methods at one area) share a row under its name."""

    title: str
    src: str | None
    width: int = 0
    height: int = 0
    outlines: list[tuple[str, str]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    group: str = ""

    def data(self) -> dict[str, Any]:
        out: dict[str, Any] = {"title": self.title, "src": self.src, "lines": self.lines}
        if self.group:
            out["group"] = self.group
        if self.outlines:
            out |= {"w": self.width, "h": self.height, "outlines": [{"d": d, "kind": k} for d, k in self.outlines]}
        return out


@dataclass
class Picture:
    """One card of the gallery: thumbnails (``(src, label)``; a benchmark's one per method), a
    caption, lines and flags, and the figures of its large view."""

    name: str
    caption: str
    thumbs: list[tuple[str | None, str]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)

    def data(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "caption": self.caption,
            "thumbs": [{"src": s, "label": label} for s, label in self.thumbs],
            "lines": self.lines,
            "flags": self.flags,
            "figures": [f.data() for f in self.figures],
        }


@dataclass
class Contents:
    """Everything a page shows. ``rows``: one list of cells per table row, in ``columns``' order,
    each with the index of its picture in ``pictures``."""

    kind: str
    columns: list[Column]
    rows: list[tuple[int, list[Any]]] = field(default_factory=list)
    pictures: list[Picture] = field(default_factory=list)
    info: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sections: str = ""

    def extend(self, other: Contents) -> None:
        """Add ``other``'s pictures, rows and notes (same columns) after these."""
        offset = len(self.pictures)
        self.pictures += other.pictures
        self.rows += [(picture + offset, cells) for picture, cells in other.rows]
        self.notes += other.notes
        self.info += other.info
        self.sections += other.sections

    def data(self) -> dict[str, Any]:
        """The page's one embedded JSON object."""
        return {
            "kind": self.kind,
            "columns": [{"key": c.key, "label": c.label, "num": c.numeric} for c in self.columns],
            "rows": [[picture, *cells] for picture, cells in self.rows],
            "pictures": [p.data() for p in self.pictures],
        }
