"""Writing a folder atomically: readers see the old folder or the whole new one, never a half-written
one and never none.

The new folder is written into a hidden staging folder beside the target and moved into place at the
end. An existing target is swapped with the staging folder in one step (Linux ``renameat2`` with
``RENAME_EXCHANGE``) and the old folder, now at the staging path, is deleted. Where that call does not
exist (other systems, kernels before 3.15, file systems without it) the fallback is two renames: the
old folder aside, the new one in; between them there is a moment with no folder at the target, and a
failure of the second puts the old one back.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import secrets
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["exchange", "replaceable", "write_folder"]

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
#: errnos meaning "this system or file system cannot exchange", so the fallback is used.
_CANNOT_EXCHANGE = {errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP}


@functools.cache
def _renameat2() -> Callable[..., int] | None:
    """The C library's ``renameat2``, or ``None`` where there is none (glibc before 2.28, not Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step; ``False`` (nothing done) where the system or the
    file system cannot."""
    function = _renameat2()
    if function is None:
        return False
    if function(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in _CANNOT_EXCHANGE:
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


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
    """Put the whole folder ``staging`` at ``target``; an old ``target`` ends up at ``staging`` (for the
    caller's clean-up) or deleted."""
    if not target.exists():
        os.rename(staging, target)  # fails, leaving both as they were, if a folder appeared meanwhile
    elif exchange(staging, target):
        shutil.rmtree(staging, ignore_errors=True)  # the old folder, swapped out
    else:
        _two_step_replace(staging, target)


def _two_step_replace(staging: Path, target: Path) -> None:
    """The fallback without an atomic exchange: the old folder aside, the new one in, the old deleted."""
    old = target.with_name(f".{target.name}.old-{secrets.token_hex(4)}")
    os.rename(target, old)
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
