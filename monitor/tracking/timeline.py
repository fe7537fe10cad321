"""A patient's timeline from the history tables: for `qsm-monitor patient` and the trend plot.

Every visit is listed, including those held for identity review (flagged, never part of the
trend) and those not comparable with earlier ones (shown with the reason). Values come from
the stored assessments, so the timeline always reflects the latest re-assessment, e.g. after a
back-filled exam.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.norms import load_model
from monitor.segment.structures import STRUCTURES
from monitor.settings import Settings
from monitor.tracking.identity import normalise_key
from monitor.tracking.plot import TrendPoint, write_trend_plot
from monitor.tracking.schema import open_history
from monitor.tracking.tables import CONFIRMED, Patient


@dataclass(frozen=True)
class TimelineEntry:
    """One processed acquisition of the patient, in time order."""

    study_uid: str
    study_datetime: datetime | None
    age_years: float | None
    identity_status: str
    identity_reason: str | None
    comparable: bool | None
    not_comparable_reason: str | None
    risk_level: str | None
    reasons: list[str]
    pipeline_version: str
    inputs_retained: bool
    """All DICOM files it was processed from still exist (re-processing is possible)."""
    structures: dict[str, Any]
    """The record's structures block (values, z, changes) as last assessed."""
    qc_reason: str | None = None
    """Why nothing is reported for this visit (segmentation QC), None when it is reportable."""


@dataclass(frozen=True)
class PatientTimeline:
    identifier: str
    issuer: str
    sex: str | None
    entries: list[TimelineEntry]

    def trend_series(self) -> dict[str, list[TrendPoint]]:
        """Bilateral means per structure of the visits that belong to the history."""
        series: dict[str, list[TrendPoint]] = {}
        for entry in self.entries:
            if entry.identity_status != CONFIRMED:
                continue
            for name in STRUCTURES:
                block = entry.structures.get(name)
                if block is None:
                    continue
                series.setdefault(name, []).append(
                    TrendPoint(
                        when=entry.study_datetime,
                        age_years=entry.age_years,
                        value_ppb=block.get("mean_ppb"),
                        comparable=bool(entry.comparable),
                        reliable_change=bool(block.get("reliable_change")),
                    )
                )
        return series

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        for entry in data["entries"]:
            when = entry["study_datetime"]
            entry["study_datetime"] = None if when is None else when.isoformat()
        return data


def find_patient(
    session: Session, patient_id: str, settings: Settings, issuer: str = ""
) -> Patient | None:
    """The patient row under the configured identity rule (never a fuzzy match)."""
    key = normalise_key(patient_id, issuer, settings.tracking)
    return session.scalar(
        select(Patient).where(Patient.identifier == key.identifier, Patient.issuer == key.issuer)
    )


def load_timeline(
    sessions: sessionmaker, patient_id: str, settings: Settings, issuer: str = ""
) -> PatientTimeline | None:
    """The patient's timeline (oldest first), or None when the history does not know them."""
    with sessions() as session:
        patient = find_patient(session, patient_id, settings, issuer)
        if patient is None:
            return None
        entries = []
        for visit in patient.visits:
            for acquisition in visit.acquisitions:
                assessment = acquisition.assessment
                entries.append(
                    TimelineEntry(
                        study_uid=visit.study_uid,
                        study_datetime=visit.study_datetime,
                        age_years=visit.age_years,
                        identity_status=visit.identity_status,
                        identity_reason=visit.identity_reason,
                        comparable=None if assessment is None else assessment.comparable,
                        not_comparable_reason=None
                        if assessment is None
                        else assessment.not_comparable_reason,
                        risk_level=None if assessment is None else assessment.risk_level,
                        reasons=[] if assessment is None else list(assessment.reasons),
                        pipeline_version=acquisition.pipeline_version,
                        inputs_retained=inputs_retained(acquisition.input_paths),
                        structures={} if assessment is None else dict(assessment.structures),
                        qc_reason=None
                        if acquisition.reportable
                        else (acquisition.qc_reason or "no value could be measured"),
                    )
                )
        entries.sort(key=lambda e: (e.study_datetime or datetime.min, e.study_uid))
        return PatientTimeline(patient.identifier, patient.issuer, patient.sex, entries)


@dataclass(frozen=True)
class StoredInputs:
    """Where a processed acquisition's DICOM files were, for re-processing."""

    study_uid: str
    study_datetime: datetime | None
    idempotency_key: str
    paths: tuple[Path, ...]
    retained: bool


def stored_inputs(
    sessions: sessionmaker, patient_id: str, settings: Settings, issuer: str = ""
) -> list[StoredInputs] | None:
    """The patient's acquisitions, oldest first; None when the history does not know them."""
    with sessions() as session:
        patient = find_patient(session, patient_id, settings, issuer)
        if patient is None:
            return None
        found = [
            StoredInputs(
                study_uid=visit.study_uid,
                study_datetime=visit.study_datetime,
                idempotency_key=acquisition.idempotency_key,
                paths=tuple(Path(p) for p in acquisition.input_paths),
                retained=inputs_retained(acquisition.input_paths),
            )
            for visit in patient.visits
            for acquisition in visit.acquisitions
        ]
    return sorted(found, key=lambda s: (s.study_datetime or datetime.min, s.study_uid))


def inputs_retained(paths: list[str]) -> bool:
    """Re-processing needs every input file; an empty list means they were never recorded."""
    return bool(paths) and all(Path(p).is_file() for p in paths)


def write_patient_trend_plot(
    path: Path, settings: Settings, patient_id: str, issuer: str = ""
) -> Path | None:
    """The patient's trend plot from the configured database; None when nothing to plot."""
    with open_history(settings) as sessions:
        timeline = load_timeline(sessions, patient_id, settings, issuer)
    if timeline is None:
        return None
    series = timeline.trend_series()
    if not series:
        return None
    model = load_model(settings.norms.model_path)
    return write_trend_plot(path, series, model, timeline.sex)
