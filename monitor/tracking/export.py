"""The history as one flat table: every acquisition, structure and side, with QC flags.

Researchers analyse it; with `controls` (each subject's first visit whose values QC released,
one row per structure and side) it is also the table `qsm-monitor norms fit` reads (same
column names: subject_id, age_years, sex, structure, side, mean_ppb). An acquisition whose QC
withheld its values still has its rows, empty, with the reason. `years_from_first_visit`
(0.1 y) gives every subject's timeline without a calendar date.

Patient IDs are site data: `pseudonymise` replaces them with a stable hash, drops study UIDs
and issuers, the visit dates (the timeline stays, relative to each subject's first visit) and
the scanner model (vendor and field strength stay, for harmonisation), and rounds ages to whole
years (enough for the norms' age bands). The hash is not keyed, so anyone holding the patient
list can recompute it: this keeps identities out of a file handed to a researcher, it is not
anonymisation (age, sex and the values stay).
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from datetime import datetime
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from monitor.segment.structures import STRUCTURES
from monitor.tracking.change import years_between
from monitor.tracking.tables import Acquisition, Measurement, Visit

__all__ = ["COHORT_COLUMNS", "cohort_rows", "write_cohort_csv"]

COHORT_COLUMNS: tuple[str, ...] = (
    "subject_id",
    "issuer",
    "study_uid",
    "visit_date",
    "years_from_first_visit",
    "age_years",
    "sex",
    "structure",
    "side",
    "mean_ppb",
    "median_ppb",
    "sd_ppb",
    "volume_ml",
    "voxel_count",
    "reportable",
    "qc_reason",
    "identity_status",
    "risk_level",
    "field_strength_t",
    "vendor",
    "model",
    "reference_region",
    "pipeline_version",
)


def _pseudonym(identifier: str, issuer: str) -> str:
    return "S-" + hashlib.sha256(f"{issuer}\x1f{identifier}".encode()).hexdigest()[:12]


def _rounded(value: float | None, digits: int) -> float | str:
    return "" if value is None or value != value else round(value, digits)


EXPORTED_SIDES: tuple[str, ...] = ("bilateral", "left", "right")


def cohort_rows(
    session: Session, *, controls: bool = False, pseudonymise: bool = False
) -> Iterator[dict[str, Any]]:
    """Rows in visit order (study date, then study UID), structures and sides as measured."""
    exported: set[int] = set()
    first_visit: dict[int, datetime] = {}
    query = (
        select(Acquisition)
        .join(Acquisition.visit)
        .options(
            selectinload(Acquisition.visit).selectinload(Visit.patient),
            selectinload(Acquisition.measurements),
            selectinload(Acquisition.assessment),
        )
        .order_by(Visit.study_datetime, Visit.study_uid, Acquisition.id)
    )
    for acquisition in session.scalars(query):
        visit, patient = acquisition.visit, acquisition.visit.patient
        if controls and (not acquisition.reportable or patient.id in exported):
            continue
        exported.add(patient.id)
        subject = (
            _pseudonym(patient.identifier, patient.issuer) if pseudonymise else patient.identifier
        )
        when = visit.study_datetime
        if when is not None:
            first_visit.setdefault(patient.id, when)  # rows come in visit order
        common = {
            "subject_id": subject,
            "issuer": "" if pseudonymise else patient.issuer,
            "study_uid": "" if pseudonymise else visit.study_uid,
            "visit_date": "" if pseudonymise or when is None else when.date().isoformat(),
            "years_from_first_visit": (
                "" if when is None else round(years_between(first_visit[patient.id], when), 1)
            ),
            "age_years": _rounded(visit.age_years, 0 if pseudonymise else 2),
            "sex": visit.sex or "",
            "reportable": acquisition.reportable,
            "qc_reason": acquisition.qc_reason or "",
            "identity_status": visit.identity_status,
            "risk_level": acquisition.assessment.risk_level if acquisition.assessment else "",
            "field_strength_t": acquisition.field_strength_t,
            "vendor": acquisition.vendor,
            "model": "" if pseudonymise else acquisition.model,
            "reference_region": acquisition.reference_region,
            "pipeline_version": acquisition.pipeline_version,
        }
        measured = {(m.structure, m.side): m for m in acquisition.measurements}
        for structure in STRUCTURES:
            for side in EXPORTED_SIDES:
                measurement = measured.get((structure, side))
                if controls and (measurement is None or measurement.mean_ppb is None):
                    continue
                yield {**common, "structure": structure, "side": side, **_values(measurement)}


def _values(measurement: Measurement | None) -> dict[str, Any]:
    """Rounded to their precision; empty where QC withheld the value."""
    if measurement is None:
        return dict.fromkeys(("mean_ppb", "median_ppb", "sd_ppb", "volume_ml", "voxel_count"), "")
    return {
        "mean_ppb": _rounded(measurement.mean_ppb, 1),
        "median_ppb": _rounded(measurement.median_ppb, 1),
        "sd_ppb": _rounded(measurement.sd_ppb, 1),
        "volume_ml": _rounded(measurement.volume_ml, 2),
        "voxel_count": measurement.voxel_count or "",
    }


def write_cohort_csv(
    session: Session, out: IO[str], *, controls: bool = False, pseudonymise: bool = False
) -> int:
    """Write the header and every row to `out`; returns the number of rows."""
    writer = csv.DictWriter(out, fieldnames=COHORT_COLUMNS)
    writer.writeheader()
    count = 0
    for row in cohort_rows(session, controls=controls, pseudonymise=pseudonymise):
        writer.writerow(row)
        count += 1
    return count
