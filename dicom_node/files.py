"""Durable files: a crash never leaves a half-written file that looks whole.

Shared by the spool (received instances), the emit step (outputs), folder delivery and the
status file, so every writer in the node has the same temp-name, fsync, rename, directory
fsync sequence.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["write_durably"]


def write_durably(path: Path, data: bytes) -> None:
    """Atomically replace `path` with `data`, durable once this returns (raises OSError)."""
    created = _make_dirs(path.parent)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".incoming-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
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
