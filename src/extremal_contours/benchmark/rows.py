"""The benchmark's CSV files, one mechanism for all of them.

Every file is a :class:`Table`: a name, fixed columns and a key (the columns that name a row). Rows
are appended as soon as a batch is done; a run killed while appending leaves at most a half-written
last line, which the next run cuts (:func:`repair`) before anything reads the files. Under torchrun
each rank appends to its own copy of every file under ``shards/rank<N>/`` and rank 0 appends the
rows the main files lack, by key, at the end (:func:`merge_shards`). A row whose key a folder
already holds is not written again (:class:`Written`).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import BenchmarkMismatch

__all__ = [
    "CONSISTENCY", "CONSISTENCY_FIELDS", "ERRORS", "FIELDS", "MAPS", "MAP_FIELDS", "PER_IMAGE", "SANITY", "SANITY_FIELDS",
    "STABILITY", "STABILITY_FIELDS", "TABLES", "Table", "Written", "append_rows", "check_columns", "drop_partial_line", "fmt",
    "merge_shards", "part_folders", "read_rows", "read_table", "repair", "shard_folder", "write_atomically",
    "write_json",
]  # fmt: skip

#: Per (method, image, area, seed): fidelity and cost of the binary mask at the area.
FIELDS = [
    "method", "image", "label", "area", "seed", "visible_area", "clean_probability", "preserve_ratio", "delete_drop",
    "seconds_per_image", "forward_backward_per_image", "forward_per_image", "batch", "pieces", "holes",
    "preserved_probability", "soft_preserve_ratio",
]  # fmt: skip

#: Per (method, image, seed): metrics of the attribution map itself.
MAP_FIELDS = [
    "method", "image", "seed", "relevance_mass", "relevance_rank", "pointing_game", "complexity", "sparseness",
    "faithfulness_correlation", "insertion_auc", "deletion_auc",
]  # fmt: skip

#: Per (method, image, area, nuisance): agreement of the explanation of a nuisance variant with the
#: picture's own (see :func:`extremal_contours.metrics.stability`).
STABILITY_FIELDS = ["method", "image", "area", "seed", "nuisance", "iou", "spearman", "top_iou"]

#: Per (method, image, area, step): the model-parameter randomisation test (see
#: :mod:`extremal_contours.sanity`): the similarity of the explanation on the model with its top
#: ``step`` layers randomised (the deepest named ``layer``) to the explanation on the model itself.
SANITY_FIELDS = ["method", "image", "area", "step", "layer", "spearman", "iou"]

#: Per (method, image, area): mean pairwise IoU of the binary masks of the runs with different seeds.
CONSISTENCY_FIELDS = ["method", "image", "area", "runs", "iou"]


@dataclass(frozen=True)
class Table:
    """One CSV file of a benchmark folder: its name, its columns and its key."""

    name: str
    fields: tuple[str, ...]
    key: tuple[str, ...]

    def key_of(self, row: Mapping[str, Any]) -> tuple[str, ...]:
        """The row's key, as text (as read back from the file)."""
        return tuple(str(row[c]) for c in self.key)

    def complete(self, row: Mapping[str, Any]) -> bool:
        """Whether a row read back has every column (a cut line lacks its last ones)."""
        return all(row.get(c) is not None for c in self.fields)


PER_IMAGE = Table("per_image.csv", tuple(FIELDS), ("method", "image", "area", "seed"))
MAPS = Table("maps.csv", tuple(MAP_FIELDS), ("method", "image", "seed"))
STABILITY = Table("stability.csv", tuple(STABILITY_FIELDS), ("method", "image", "area", "nuisance"))
CONSISTENCY = Table("consistency.csv", tuple(CONSISTENCY_FIELDS), ("method", "image", "area"))
SANITY = Table("sanity.csv", tuple(SANITY_FIELDS), ("method", "image", "area", "step"))
ERRORS = Table("errors.csv", ("image", "error"), ("image",))
#: Every CSV a benchmark writes.
TABLES = (PER_IMAGE, MAPS, STABILITY, CONSISTENCY, SANITY, ERRORS)


def fmt(value: float) -> str:
    """A number as the CSV files write it (6 significant digits)."""
    return f"{value:.6g}"


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV file (none if it does not exist)."""
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _header(path: Path) -> list[str] | None:
    """The column names of a file whose first line is complete, else ``None``."""
    with path.open(newline="") as handle:
        line = handle.readline()
    if not line.endswith("\n"):
        return None
    return next(csv.reader([line]), [])


def append_rows(path: Path, fields: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """Append rows to a CSV, made with ``fields`` as header when new or empty; a file with other
    columns is refused (:class:`BenchmarkMismatch`). A run cuts a killed run's half-written last
    line at its start (:func:`repair`), before anything appends."""
    new = not path.is_file() or path.stat().st_size == 0
    if not new and _header(path) != list(fields):
        raise BenchmarkMismatch(f"{path} has other columns than {', '.join(fields)}; use another --out")
    with path.open("w" if new else "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fields), extrasaction="ignore", restval="")
        if new:
            writer.writeheader()
        writer.writerows(rows)
        handle.flush()


def drop_partial_line(path: Path) -> None:
    """Cut a last line that a killed run left half written (no final newline). Reads the whole file
    only then: a complete file costs one byte."""
    with path.open("rb+") as handle:
        handle.seek(-1, 2)
        if handle.read(1) == b"\n":
            return
        handle.seek(0)
        handle.truncate(handle.read().rfind(b"\n") + 1)


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file beside it, so that a killed run leaves
    either the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """``data`` as indented JSON, written atomically."""
    write_atomically(path, json.dumps(data, indent=1, default=str))


def shard_folder(out: Path, rank: int) -> Path:
    """Where the process of rank ``rank`` writes its rows under torchrun."""
    return out / "shards" / f"rank{rank}"


def part_folders(out: Path) -> list[Path]:
    """The folder and every shard folder in it (rows of a killed sharded run count as written)."""
    shards = out / "shards"
    return [out, *sorted(p for p in shards.glob("rank*") if p.is_dir())] if shards.is_dir() else [out]


def read_table(out: Path, table: Table) -> list[dict[str, str]]:
    """The complete rows of ``table`` in the folder and its shards."""
    return [r for p in part_folders(out) for r in read_rows(p / table.name) if table.complete(r)]


def repair(out: Path) -> None:
    """Cut the half-written last line a killed run left in any file of the folder or its shards."""
    for part in part_folders(out):
        for table in TABLES:
            path = part / table.name
            if path.is_file() and path.stat().st_size:
                drop_partial_line(path)


def check_columns(out: Path) -> None:
    """Refuse a folder whose files have other columns than this version writes."""
    for part in part_folders(out):
        for table in TABLES:
            path = part / table.name
            if not path.is_file():
                continue
            header = _header(path)
            if header is not None and header != list(table.fields):
                raise BenchmarkMismatch(
                    f"{path} has other columns than this version writes ({', '.join(table.fields)}); use another --out"
                )


class Written:
    """The keys of the rows a folder holds (its files and its shards'), per table: a row is written
    once, however often its picture is run again."""

    def __init__(self, out: Path) -> None:
        self._keys = {t.name: {t.key_of(r) for r in read_table(out, t)} for t in TABLES}

    def has(self, table: Table, *key: Any) -> bool:
        return tuple(str(k) for k in key) in self._keys[table.name]

    def new(self, table: Table, rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """The rows whose key is not written yet (each key once), now counted as written."""
        keys = self._keys[table.name]
        out = []
        for row in rows:
            key = table.key_of(row)
            if key not in keys:
                keys.add(key)
                out.append(row)
        return out


def merge_shards(out: Path) -> None:
    """Append every shard's rows missing from the main files (by key), then remove the shards."""
    shards = part_folders(out)[1:]
    if not shards:
        return
    for table in TABLES:
        seen = {table.key_of(r) for r in read_rows(out / table.name)}
        new = []
        for shard in shards:
            for row in read_rows(shard / table.name):
                key = table.key_of(row)
                if key not in seen:
                    seen.add(key)
                    new.append(row)
        if new:
            append_rows(out / table.name, table.fields, new)
    for shard in shards:
        shutil.rmtree(shard)
