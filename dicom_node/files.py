"""Durable files: a crash never leaves a half-written file that looks whole.

Shared by the spool (received instances), the emit step (outputs), folder delivery and the
status file, so every writer in the node has the same temp-name, fsync, rename, directory
fsync sequence.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["write_durably", "write_durably_once"]


def write_durably(path: Path, data: bytes) -> None:
    """Atomically replace `path` with `data`, durable once this returns (raises OSError)."""
    _place(path, data, os.replace)


def write_durably_once(path: Path, data: bytes) -> bool:
    """Create `path` with `data` unless it exists: True when this call created it.

    The claim is one hard link, atomic on POSIX file systems: of two concurrent writers
    exactly one wins, and the file never holds a mix or the loser's copy (the spool keeps
    the first copy of an instance and must know which one that was).
    """
    try:
        _place(path, data, os.link)
    except FileExistsError:
        return False
    return True


def _place(path: Path, data: bytes, publish: Callable[[str, Path], None]) -> None:
    """Write a synced temporary file beside `path`, `publish` it there, sync the directories."""
    created = _make_dirs(path.parent)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".incoming-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        publish(tmp_name, path)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
    for directory in [path.parent, *created]:
        _fsync_dir(directory)


def _make_dirs(directory: Path) -> list[Path]:
    """Create missing directories; return the parents whose entries changed (to fsync)."""
    missing = [d for d in [directory, *directory.parents] if not d.exists()]
    directory.mkdir(parents=True, exist_ok=True)
    return [d.parent for d in missing]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
