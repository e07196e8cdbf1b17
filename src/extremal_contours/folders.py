"""Writing a folder atomically: a failure never leaves a half-written folder.

The new folder is written into a hidden staging folder beside the target and moved into place at the
end; an existing target is first renamed aside, then deleted.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

__all__ = ["replaceable", "write_folder"]


def replaceable(folder: Path, marker: str) -> bool:
    """``folder`` may be replaced: it is empty, holds ``marker``, or holds only sub-folders that hold
    it (a save never deletes other files)."""
    if (folder / marker).is_file():
        return True
    return all(e.is_dir() and (e / marker).is_file() for e in folder.iterdir())


def write_folder(target: str | os.PathLike[str], fill: Callable[[Path], None], marker: str) -> Path:
    """Write a folder at ``target`` atomically: ``fill(staging)`` writes its files into a new hidden
    folder, which then replaces ``target``. An existing ``target`` must be :func:`replaceable`
    (``marker`` names the file every such folder holds). On any failure the staging folder is
    deleted and ``target`` is as it was."""
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise ValueError(f"cannot save to {target}: it is a file, not a folder")
    if target.is_dir() and not replaceable(target, marker):
        raise ValueError(f"cannot save to {target}: the folder holds other files than a saved explanation")
    if target.parent.exists() and not target.parent.is_dir():
        raise ValueError(f"cannot save to {target}: {target.parent} is a file, not a folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = _staging_folder(target)
    try:
        fill(staging)
        _move_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _staging_folder(target: Path) -> Path:
    """A new hidden folder beside ``target`` (made with ``mkdir``, so the process's umask applies,
    unlike ``tempfile.mkdtemp``'s private 0700)."""
    while True:
        staging = target.with_name(f".{target.name}.{secrets.token_hex(4)}")
        try:
            staging.mkdir()
            return staging
        except FileExistsError:
            continue


def _move_into_place(staging: Path, target: Path) -> None:
    """Move ``staging`` to ``target``, replacing an existing folder only once the new one is whole."""
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
        os.replace(staging, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, target)
