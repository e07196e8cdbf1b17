"""A compact store for many explanations: one SQLite file, one row per (image, target, area, method,
seed, settings); each distinct settings dict (and the library versions) is stored once, in its own
table, keyed by a hash.

A contour is a few numbers (centre, harmonics, scale), so a whole dataset's explanations fit in one
small table; masks are redrawn from the parameters (:func:`redraw`), never stored. SQLite is in
Python's standard library (no server, no extra dependency), and every batch of rows is written in
one transaction: a run killed at any moment leaves either the whole batch or none of it, so a
partially written row is never read as complete. Re-running skips what is stored.

Sharded runs (``torchrun``) write one file per rank under ``shards/`` and rank 0 merges them into
the main file at the end (:func:`merge`); what any shard or the main file holds counts as done, so a
rerun with a different number of processes still resumes correctly.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from . import contour as C
from .result import ContourResult

__all__ = ["COLUMNS", "ResultStore", "contours_of", "done_images", "failed_images", "load_results", "merge", "redraw", "settings_key", "shard_path", "store_files"]

#: Columns of the ``explanations`` table, in order (JSON text for the lists and dicts).
COLUMNS = (
    "image", "target", "area", "method", "seed", "settings_key",
    "variant", "score", "height", "width", "centre_x", "centre_y", "scale", "coeffs", "polygon",
    "visible_area", "clean_score", "preserve_score", "delete_score",
    "clean_probability", "preserve_probability", "delete_probability",
    "seconds", "forward_backward", "source", "parts",
)  # fmt: skip
KEY = ("image", "target", "area", "method", "seed", "settings_key")

_TEXT = ("image", "method", "settings_key", "variant", "score", "coeffs", "polygon", "source", "parts")
_TYPES = {c: "TEXT" for c in _TEXT} | {c: "INTEGER" for c in ("target", "seed", "height", "width")}
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS explanations (
    {", ".join(f"{c} {_TYPES.get(c, 'REAL')}" for c in COLUMNS)},
    PRIMARY KEY ({", ".join(KEY)})
);
CREATE TABLE IF NOT EXISTS errors (image TEXT PRIMARY KEY, error TEXT);
CREATE TABLE IF NOT EXISTS settings (settings_key TEXT PRIMARY KEY, settings TEXT, versions TEXT);
"""


def settings_key(settings: dict[str, Any]) -> str:
    """A short stable hash of a settings dict (rows of different settings never mix)."""
    return hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(str(path), timeout=60)
    con.execute("PRAGMA journal_mode=WAL")
    con.executescript(_SCHEMA)
    have = tuple(row[1] for row in con.execute("PRAGMA table_info(explanations)"))
    if have != COLUMNS:
        con.close()
        raise sqlite3.DatabaseError(f"{path} has other columns than this version writes; use another --out")
    return con


def store_files(path: str | os.PathLike[str]) -> list[Path]:
    """The main file and every shard beside it."""
    path = Path(path)
    shards = sorted((path.parent / "shards").glob(f"{path.stem}.rank*.sqlite")) if (path.parent / "shards").is_dir() else []
    return ([path] if path.is_file() else []) + shards


def shard_path(path: str | os.PathLike[str], rank: int) -> Path:
    path = Path(path)
    return path.parent / "shards" / f"{path.stem}.rank{rank}.sqlite"


class ResultStore:
    """Rows of explanations in one SQLite file.

    Example:
        >>> store = ResultStore("results/explanations.sqlite")         # doctest: +SKIP
        >>> store.add(result, method="contour", images=["a.jpg"])        # doctest: +SKIP
        >>> rows = load_results("results/explanations.sqlite")          # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        with closing(_connect(self.path)):
            pass

    def add(self, result: ContourResult, *, method: str = "contour", images: Sequence[str] | None = None, sources: Sequence[str] | None = None) -> int:
        """Store every (image, area) of ``result`` in one transaction; returns the rows written."""
        rows = list(rows_of(result, method=method, images=images, sources=sources))
        with closing(_connect(self.path)) as con, con:
            if rows:
                con.execute(
                    "INSERT OR IGNORE INTO settings VALUES (?, ?, ?)",
                    (rows[0]["settings_key"], json.dumps(result.settings, sort_keys=True, default=str), json.dumps(result.versions, sort_keys=True)),
                )
            con.executemany(
                f"INSERT OR REPLACE INTO explanations ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                [tuple(r[c] for c in COLUMNS) for r in rows],
            )
        return len(rows)

    def add_error(self, image: str, error: str) -> None:
        with closing(_connect(self.path)) as con, con:
            con.execute("INSERT OR REPLACE INTO errors VALUES (?, ?)", (image, error))

    def __len__(self) -> int:
        with closing(_connect(self.path)) as con:
            return int(con.execute("SELECT COUNT(*) FROM explanations").fetchone()[0])


def rows_of(result: ContourResult, *, method: str = "contour", images: Sequence[str] | None = None, sources: Sequence[str] | None = None) -> Iterator[dict[str, Any]]:
    names = list(images) if images is not None else list(result.names or [str(i) for i in range(result.num_images)])
    key = settings_key(result.settings | {"variant": result.variant, "score": result.score})
    height, width = result.image_size

    def value(t: Tensor | None, i: int, j: int | None = None) -> float | None:
        if t is None:
            return None
        return float(t[i] if j is None else t[i, j])

    for i, name in enumerate(names):
        for j, area in enumerate(result.areas):
            yield {
                "image": name,
                "target": int(result.classes[i]) if result.classes is not None else -1,
                "area": float(area),
                "method": method,
                "seed": int(result.seed),
                "settings_key": key,
                "variant": result.variant,
                "score": result.score,
                "height": height,
                "width": width,
                "centre_x": float(result.centre[i, j, 0]),
                "centre_y": float(result.centre[i, j, 1]),
                "scale": float(result.scale[i, j]),
                "coeffs": json.dumps([[round(float(v), 7) for v in pair] for pair in result.coeffs[i, j].tolist()], separators=(",", ":")),
                "polygon": json.dumps([[round(float(v), 1) for v in p] for p in result.polygons[i, j].tolist()], separators=(",", ":")),
                "visible_area": float(result.visible_area[i, j]),
                "clean_score": float(result.clean_score[i]),
                "preserve_score": float(result.preserve_score[i, j]),
                "delete_score": float(result.delete_score[i, j]),
                "clean_probability": value(result.clean_probability, i),
                "preserve_probability": value(result.preserve_probability, i, j),
                "delete_probability": value(result.delete_probability, i, j),
                "seconds": float(result.cost.get("seconds", float("nan"))) / max(1, result.num_images),
                "forward_backward": float(result.cost.get("forward_backward", 0)) / max(1, result.num_images * len(result.areas)),
                "source": sources[i] if sources is not None else None,
                "parts": _parts_json(result, i, j),
            }


def _parts_json(result: ContourResult, i: int, j: int) -> str | None:
    """The separate contours of a multi-contour region as JSON (``None`` for one contour)."""
    parts = result.parts
    if parts is None or int(parts.count[i, j]) < 2:
        return None
    return json.dumps(
        [
            {
                "centre": [round(float(v), 7) for v in parts.centre[i, j, k].tolist()],
                "scale": round(float(parts.scale[i, j, k]), 7),
                "coeffs": [[round(float(v), 7) for v in pair] for pair in parts.coeffs[i, j, k].tolist()],
                "polygon": [[round(float(v), 1) for v in p] for p in parts.polygons[i, j, k].tolist()],
            }
            for k in range(int(parts.count[i, j]))
        ],
        separators=(",", ":"),
    )


def _read(path: Path, where: str = "", args: Iterable[Any] = ()) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(str(path), timeout=60)) as con:
        con.row_factory = sqlite3.Row
        try:
            return [
                dict(r)
                for r in con.execute(
                    f"SELECT e.*, s.settings, s.versions FROM explanations e LEFT JOIN settings s USING (settings_key) {where} "
                    "ORDER BY image, area, method, seed",
                    tuple(args),
                )
            ]
        except sqlite3.OperationalError:  # no table yet
            return []


def load_results(path: str | os.PathLike[str], image: str | None = None, include_shards: bool = True) -> list[dict[str, Any]]:
    """Rows as dicts (``coeffs``, ``polygon``, ``settings`` and ``versions`` decoded), from the main
    file and, unless ``include_shards`` is false, shards not merged yet; optionally one image's."""
    files = store_files(path) if include_shards else [Path(path)]
    if not files:
        raise FileNotFoundError(f"no result store at {path}")
    where, args = ("WHERE e.image = ?", (image,)) if image is not None else ("", ())
    seen: dict[tuple[Any, ...], dict[str, Any]] = {}
    for file in files:
        for row in _read(file, where, args):
            seen.setdefault(tuple(row[k] for k in KEY), row)
    out = []
    for row in seen.values():
        for name in ("coeffs", "polygon", "settings", "versions", "parts"):
            row[name] = json.loads(row[name]) if row.get(name) else None
        out.append(row)
    return sorted(out, key=lambda r: (r["image"], r["area"], r["method"], r["seed"]))


def done_images(path: str | os.PathLike[str], settings: str, method: str, seed: int, areas: Sequence[float]) -> set[str]:
    """Images whose every area is stored (in the main file or any shard) for these settings."""
    counts: dict[str, set[float]] = {}
    for file in store_files(path):
        with closing(sqlite3.connect(str(file), timeout=60)) as con:
            try:
                rows = con.execute(
                    "SELECT image, area FROM explanations WHERE settings_key = ? AND method = ? AND seed = ?", (settings, method, seed)
                ).fetchall()
            except sqlite3.OperationalError:
                continue
        for image, area in rows:
            counts.setdefault(image, set()).add(round(area, 9))
    wanted = {round(float(a), 9) for a in areas}
    return {image for image, got in counts.items() if wanted <= got}


def failed_images(path: str | os.PathLike[str]) -> dict[str, str]:
    """Images recorded as unreadable or failing, with their error (main file and shards)."""
    out: dict[str, str] = {}
    for file in store_files(path):
        with closing(sqlite3.connect(str(file), timeout=60)) as con:
            try:
                out.update(dict(con.execute("SELECT image, error FROM errors").fetchall()))
            except sqlite3.OperationalError:
                continue
    return out


def merge(path: str | os.PathLike[str]) -> int:
    """Copy every shard's rows and errors into the main file (one transaction), then remove the
    shards; returns the rows in the main file."""
    path = Path(path)
    shards = [f for f in store_files(path) if f != path]
    with closing(_connect(path)) as con:
        for shard in shards:  # one transaction per shard; INSERT OR IGNORE makes a repeat harmless
            con.execute("ATTACH DATABASE ? AS shard", (str(shard),))
            try:
                with con:
                    columns = ", ".join(COLUMNS)
                    con.execute(f"INSERT OR IGNORE INTO explanations ({columns}) SELECT {columns} FROM shard.explanations")
                    con.execute("INSERT OR IGNORE INTO errors SELECT * FROM shard.errors")
                    con.execute("INSERT OR IGNORE INTO settings SELECT * FROM shard.settings")
            except sqlite3.OperationalError:  # an empty shard (no tables)
                pass
            con.execute("DETACH DATABASE shard")
        total = int(con.execute("SELECT COUNT(*) FROM explanations").fetchone()[0])
    for shard in shards:
        for suffix in ("", "-wal", "-shm"):
            Path(str(shard) + suffix).unlink(missing_ok=True)
    return total


def contours_of(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The contours of a stored row (from :func:`load_results`): its ``parts`` for a multi-contour
    region, else the row's own contour; each with ``centre``, ``coeffs``, ``scale`` and ``polygon``."""
    if row.get("parts"):
        return row["parts"]
    centre = [row["centre_x"], row["centre_y"]]
    return [{"centre": centre, "coeffs": row["coeffs"], "scale": row["scale"], "polygon": row["polygon"]}]


def redraw(row: dict[str, Any], edge: float | None = None) -> Tensor:
    """The mask ``(H, W)`` of a stored row, from its parameters alone (bool; soft with ``edge``); a
    multi-contour row is the union of its parts."""
    pieces = contours_of(row)
    centre = torch.tensor([[p["centre"] for p in pieces]], dtype=torch.float64)
    coeffs = torch.tensor([[p["coeffs"] for p in pieces]], dtype=torch.float64).reshape(1, len(pieces), -1, 2)
    scale = torch.tensor([[p["scale"] for p in pieces]], dtype=torch.float64)
    union, _ = C.rasterize_union(centre, coeffs, scale, int(row["height"]), int(row["width"]), edge)
    return union[0, 0]
