"""Read the control measurements a site model is fitted from (format: docs/norms.md).

One row per subject, structure and side ("long" form), so a site may supply any subset of
structures and sides, and the file is what `qsm-monitor process --json` values flatten to:

    subject_id,age_years,sex,structure,side,mean_ppb
    c001,34.5,F,thalamus,bilateral,-0.8

Every problem is reported with its line number, because these files are assembled by hand.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from monitor.norms.model import NORM_SIDES, NormsError
from monitor.segment.structures import STRUCTURES

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
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise NormsError(f"{path}: missing column(s) {', '.join(missing)} in the header")
            rows = [_parse(row, f"{path} line {reader.line_num}") for row in reader]
    except FileNotFoundError:
        raise NormsError(f"controls file not found: {path}") from None
    except UnicodeDecodeError:
        raise NormsError(f"{path}: not a UTF-8 text CSV file") from None
    if not rows:
        raise NormsError(f"{path}: no control rows after the header")
    _reject_duplicates(rows, path)
    return rows


def _parse(row: dict[str, str | None], where: str) -> ControlRow:
    values = {key: (row.get(key) or "").strip() for key in REQUIRED_COLUMNS}
    if not values["subject_id"]:
        raise NormsError(f"{where}: subject_id is empty")
    age = _number(values["age_years"], "age_years", where)
    if not AGE_LIMITS_YEARS[0] <= age <= AGE_LIMITS_YEARS[1]:
        raise NormsError(f"{where}: age_years {age} is outside {AGE_LIMITS_YEARS}")
    sex = values["sex"].upper()
    if sex not in SEXES:
        raise NormsError(f"{where}: sex {values['sex']!r} must be F, M, O or empty")
    structure = values["structure"].lower()
    if structure not in STRUCTURES:
        raise NormsError(f"{where}: structure {values['structure']!r} is not one of {STRUCTURES}")
    side = values["side"].lower()
    if side not in NORM_SIDES:
        raise NormsError(f"{where}: side {values['side']!r} is not one of {NORM_SIDES}")
    value = _number(values["mean_ppb"], "mean_ppb", where)
    return ControlRow(values["subject_id"], age, sex, structure, side, value)


def _number(text: str, column: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise NormsError(f"{where}: {column} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise NormsError(f"{where}: {column} {text!r} is not a finite number")
    return value


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
