"""Reading the CSV tables that people assemble by hand (controls, retest scans, values).

Every problem names the file and the line, and is raised as the caller's own input error
(a `MonitorError` that is also a `ValueError`), so each command prints one plain line and
exits with 2. Cells are stripped, a UTF-8 byte-order mark is accepted, extra columns are
ignored and column order is free.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from monitor.errors import MonitorError

__all__ = ["CsvRow", "number", "read_rows"]


@dataclass(frozen=True)
class CsvRow:
    where: str
    """"FILE line N", the prefix of every message about this row."""
    cells: dict[str, str]
    """Stripped text of every column in the header (empty when missing)."""


def read_rows(
    path: Path, required: Sequence[str], error: type[MonitorError], what: str
) -> list[CsvRow]:
    """Every data row of ``path``; ``error`` for a missing file, column or row, or non-text.

    ``what`` names the rows in messages ("control", "retest").
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = list(reader.fieldnames or [])
            missing = [c for c in required if c not in header]
            if missing:
                raise error(f"{path}: missing column(s) {', '.join(missing)} in the header")
            rows = [
                CsvRow(
                    f"{path} line {reader.line_num}",
                    {key: (row.get(key) or "").strip() for key in header},
                )
                for row in reader
            ]
    except FileNotFoundError:
        raise error(f"{what} file not found: {path}") from None
    except IsADirectoryError:
        raise error(f"{path} is a folder; give the {what} CSV file") from None
    except OSError as exc:
        raise error(f"{path}: cannot be read ({exc.strerror})") from None
    except (UnicodeDecodeError, csv.Error):
        raise error(f"{path}: not a UTF-8 text CSV file") from None
    if not rows:
        raise error(f"{path}: no {what} rows after the header")
    return rows


def number(text: str, column: str, where: str, error: type[MonitorError]) -> float:
    """A finite number, or ``error`` naming the row and column."""
    try:
        value = float(text)
    except ValueError:
        raise error(f"{where}: {column} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise error(f"{where}: {column} {text!r} is not a finite number")
    return value
