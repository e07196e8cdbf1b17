"""Result folders of an explain job: named from the pictures' paths, told apart by fingerprints.

A picture's result folder is its path inside the folder it was found in (or its file name), without
the suffix. A saved result records its picture's fingerprint (SHA-1 of its bytes), so a re-run
knows the same picture wherever it now lies, and never takes another picture of the same name for
one that is done.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = ["Fingerprints", "find_result", "holds_another", "image_key", "is_picture", "result_folders", "safe_name", "saved_meta"]


class Fingerprints:
    """SHA-1 of pictures' bytes, read once per picture."""

    def __init__(self) -> None:
        self._seen: dict[Path, str] = {}

    def __call__(self, path: Path) -> str:
        key = path.resolve()
        if key not in self._seen:
            digest = hashlib.sha1()
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            self._seen[key] = digest.hexdigest()
        return self._seen[key]


def safe_name(text: str) -> str:
    """A file-system-safe name part (never ``.``, ``..`` or hidden)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text) or "image"
    return "_" + safe if safe.startswith(".") else safe


def image_key(path: Path, roots: Sequence[Path]) -> str:
    """The picture's path inside the outermost folder given that holds it (whatever the order the
    folders were given in), else its file name."""
    inside = []
    for root in roots:
        if root.is_dir():
            try:
                inside.append(path.resolve().relative_to(root.resolve()))
            except ValueError:
                continue
    return max(inside, key=lambda p: len(p.parts)).as_posix() if inside else path.name


def saved_meta(folder: Path) -> dict[str, Any] | None:
    """The ``meta`` of the explanation saved in ``folder`` (or, for a picture's folder, in the first
    of its area folders), or ``None``."""
    record = folder / "explanation.json"
    if not record.is_file():
        inner = sorted(folder.glob("area*/explanation.json")) if folder.is_dir() else []
        if not inner:
            return None
        record = inner[0]
    try:
        meta = json.loads(record.read_text()).get("meta", {})
    except (OSError, ValueError, AttributeError):
        return None
    return meta if isinstance(meta, dict) else None


def is_picture(meta: dict[str, Any], path: Path, fingerprint: Fingerprints) -> bool:
    """``meta`` was saved for this picture: the same bytes."""
    try:
        return bool(meta.get("source_sha1")) and meta["source_sha1"] == fingerprint(path)
    except OSError:
        return False


def holds_another(meta: dict[str, Any] | None, path: Path, fingerprint: Fingerprints) -> bool:
    """A result folder's ``meta`` belongs to another picture, one that still exists elsewhere with
    other pixels (a folder whose picture was moved, or edited in place, is this picture's)."""
    if meta is None or is_picture(meta, path, fingerprint):
        return False
    source = meta.get("source")
    return bool(source) and source != str(path.resolve()) and Path(str(source)).exists()


def result_folders(files: Sequence[Path], roots: Sequence[Path], out: Path, fingerprint: Fingerprints) -> dict[Path, Path]:
    """A result folder (relative to ``out``) per picture: its path inside the folder it was found
    in (or its file name), without the suffix. Adding or removing pictures renames nobody else's
    folder. Pictures that would share a folder, or whose folder would hold another's, get their
    suffix, then a short fingerprint, added; of pictures that share a name, the one whose result
    already has the bare folder keeps it."""
    names: dict[Path, Path] = {}
    for f in files:
        key = PurePosixPath(image_key(f, roots))
        stem = key.name[: -len(key.suffix)] if key.suffix else key.name
        names[f] = Path(*[safe_name(p) for p in key.parent.parts], safe_name(stem))
    for step in ("suffix", "fingerprint"):
        parents = {p for n in names.values() for p in n.parents}
        groups: dict[Path, list[Path]] = {}
        for f, n in names.items():
            groups.setdefault(n, []).append(f)
        for name, members in groups.items():
            if len(members) == 1 and name not in parents:
                continue
            meta = saved_meta(out / name) if name not in parents else None
            keeper = next((f for f in members if meta is not None and is_picture(meta, f, fingerprint)), None)
            for f in members:
                if f is keeper:
                    continue
                try:
                    tag = safe_name(f.suffix.lstrip(".").lower()) if step == "suffix" else fingerprint(f)[:8]
                except OSError:  # unreadable: it fails later with its own message
                    tag = "unreadable"
                names[f] = name.with_name(f"{name.name}-{tag}")
    return names


def find_result(path: Path, folder: Path, record: dict[str, Any], fingerprint: Fingerprints) -> tuple[Path, bool]:
    """The folder for the result of the picture ``path`` (``folder``, or beside it when ``folder``
    holds another picture's result, from an earlier run on other files) and whether it already
    holds this picture's result of the job ``record``."""
    meta = saved_meta(folder)
    if holds_another(meta, path, fingerprint):
        with contextlib.suppress(OSError):  # unreadable: loading the picture reports it
            folder = folder.with_name(f"{folder.name}-{fingerprint(path)[:8]}")
        meta = saved_meta(folder)
    done = meta is not None and meta.get("job") == record and is_picture(meta, path, fingerprint)
    return folder, done
