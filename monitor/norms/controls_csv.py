"""Read the control measurements a site model is fitted from (format: docs/norms.md).

One row per subject, structure and side ("long" form), so a site may supply any subset of
structures and sides, and the file is what `qsm-monitor process --json` values flatten to:

    subject_id,age_years,sex,structure,side,mean_ppb
    c001,34.5,F,thalamus,bilateral,-0.8

Every problem is reported with its line number, because these files are assembled by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from monitor.csv_input import number, read_rows
from monitor.errors import MonitorError
from monitor.norms.model import NORM_SIDES, NormsError
from monitor.segment.structures import STRUCTURES

__all__ = [
    "AGE_LIMITS_YEARS",
    "REQUIRED_COLUMNS",
    "SEXES",
    "ControlRow",
    "measurement_cells",
    "read_controls_csv",
    "structure_and_side",
]

REQUIRED_COLUMNS: tuple[str, ...] = (
    "subject_id",
    "age_years",
    "sex",
    "structure",
    "side",
    "mean_ppb",
)
SEXES: tuple[str, ...] = ("F", "M", "O", "")
"""F, M, O (other) or empty (unknown); only F and M inform the sex covariate."""
AGE_LIMITS_YEARS = (0.0, 120.0)


@dataclass(frozen=True)
class ControlRow:
    subject_id: str
    age_years: float
    sex: str
    structure: str
    side: str
    mean_ppb: float


def read_controls_csv(path: Path) -> list[ControlRow]:
    """All rows, validated; raises NormsError naming the file and line of the first problem."""
    rows = [
        _parse(row.cells, row.where)
        for row in read_rows(path, REQUIRED_COLUMNS, NormsError, "control")
    ]
    _reject_duplicates(rows, Path(path))
    return rows


def _parse(values: dict[str, str], where: str) -> ControlRow:
    if not values["subject_id"]:
        raise NormsError(f"{where}: subject_id is empty")
    age = number(values["age_years"], "age_years", where, NormsError)
    if not AGE_LIMITS_YEARS[0] <= age <= AGE_LIMITS_YEARS[1]:
        raise NormsError(f"{where}: age_years {age} is outside {AGE_LIMITS_YEARS}")
    sex, structure, side, value = measurement_cells(values, where, NormsError)
    return ControlRow(values["subject_id"], age, sex, structure, side, value)


def measurement_cells(
    values: dict[str, str], where: str, error: type[MonitorError]
) -> tuple[str, str, str, float]:
    """Sex, structure, side and mean_ppb of a row, checked (shared by the value tables)."""
    sex = values["sex"].upper()
    if sex not in SEXES:
        raise error(f"{where}: sex {values['sex']!r} must be F, M, O or empty")
    structure, side = structure_and_side(values, where, error)
    return sex, structure, side, number(values["mean_ppb"], "mean_ppb", where, error)


def structure_and_side(
    values: dict[str, str], where: str, error: type[MonitorError]
) -> tuple[str, str]:
    """The row's structure and side, lower-cased and checked (shared by the value tables)."""
    structure = values["structure"].lower()
    if structure not in STRUCTURES:
        raise error(f"{where}: structure {values['structure']!r} is not one of {STRUCTURES}")
    side = values["side"].lower()
    if side not in NORM_SIDES:
        raise error(f"{where}: side {values['side']!r} is not one of {NORM_SIDES}")
    return structure, side


def _reject_duplicates(rows: list[ControlRow], path: Path) -> None:
    seen: set[tuple[str, str, str]] = set()
    for index, row in enumerate(rows):
        key = (row.subject_id, row.structure, row.side)
        if key in seen:
            raise NormsError(
                f"{path} line {index + 2}: subject {row.subject_id} already has a "
                f"{row.structure} {row.side} row"
            )
        seen.add(key)
