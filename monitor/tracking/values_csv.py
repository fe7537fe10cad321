"""Read a table of measurements from any pipeline for `qsm-monitor assess` (docs/norms.md).

One row per subject, visit, structure and side (long form, header required, column order
free, extra columns ignored):

    subject_id,visit_date,birth_date,sex,structure,side,mean_ppb,protocol
    s01,2021-03-01,1978-05-02,F,thalamus,bilateral,-1.2,3T-GRE-v2

``visit_date`` is an ISO date (or date and time); give ``birth_date`` (ISO) or
``age_years`` (age at that visit); ``sex`` F, M, O or empty; ``protocol`` is optional: visits
of one subject with different protocols are not compared (only their z-scores count).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from monitor.csv_input import CsvRow, number, read_rows
from monitor.errors import MonitorError
from monitor.norms.controls_csv import AGE_LIMITS_YEARS, measurement_cells

__all__ = ["VALUE_COLUMNS", "MeasuredValue", "ValuesError", "read_values_csv"]

VALUE_COLUMNS: tuple[str, ...] = (
    "subject_id",
    "visit_date",
    "sex",
    "structure",
    "side",
    "mean_ppb",
)
"""Required besides one of ``birth_date`` and ``age_years``."""
AGE_COLUMNS = ("birth_date", "age_years")


class ValuesError(MonitorError, ValueError):
    """A malformed values table (the message names file and line)."""


@dataclass(frozen=True)
class MeasuredValue:
    subject_id: str
    visit_at: datetime
    birth_date: date | None
    age_years: float | None
    sex: str | None
    structure: str
    side: str
    mean_ppb: float
    protocol: str


def read_values_csv(path: Path) -> list[MeasuredValue]:
    """All rows, validated; ValuesError naming the file and line of the first problem."""
    rows = read_rows(path, VALUE_COLUMNS, ValuesError, "value")
    if not any(column in rows[0].cells for column in AGE_COLUMNS):
        raise ValuesError(f"{path}: needs a birth_date or an age_years column")
    values = [_parse(row) for row in rows]
    _reject_duplicates(values, rows)
    return values


def _parse(row: CsvRow) -> MeasuredValue:
    cells, where = row.cells, row.where
    if not cells["subject_id"]:
        raise ValuesError(f"{where}: subject_id is empty")
    visit_at = _iso(cells["visit_date"], "visit_date", where)
    birth_text = cells.get("birth_date", "")
    birth = _iso(birth_text, "birth_date", where).date() if birth_text else None
    age_text = cells.get("age_years", "")
    age = number(age_text, "age_years", where, ValuesError) if age_text else None
    if birth is None and age is None:
        raise ValuesError(f"{where}: give birth_date or age_years")
    if birth is not None and birth > visit_at.date():
        raise ValuesError(f"{where}: birth_date {birth} is after visit_date {visit_at.date()}")
    if age is not None and not AGE_LIMITS_YEARS[0] <= age <= AGE_LIMITS_YEARS[1]:
        raise ValuesError(f"{where}: age_years {age:g} is outside {AGE_LIMITS_YEARS}")
    sex, structure, side, value = measurement_cells(cells, where, ValuesError)
    return MeasuredValue(
        cells["subject_id"],
        visit_at,
        birth,
        age,
        sex or None,
        structure,
        side,
        value,
        cells.get("protocol", ""),
    )


def _iso(text: str, column: str, where: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValuesError(f"{where}: {column} {text!r} is not an ISO date (YYYY-MM-DD)") from None


def _reject_duplicates(values: Sequence[MeasuredValue], rows: Sequence[CsvRow]) -> None:
    seen: set[tuple[str, datetime, str, str, str]] = set()
    for value, row in zip(values, rows, strict=True):
        key = (value.subject_id, value.visit_at, value.protocol, value.structure, value.side)
        if key in seen:
            raise ValuesError(
                f"{row.where}: subject {value.subject_id} already has a {value.structure} "
                f"{value.side} value at {value.visit_at.date()}"
            )
        seen.add(key)
