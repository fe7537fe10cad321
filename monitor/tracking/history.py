"""Store a processed visit in the patient's history and (re-)assess the history around it.

`record_visit` is the tracking step of the pipeline. In one transaction it matches the patient
(`monitor.tracking.identity`), upserts visit, acquisition (with its protocol fingerprint) and
measurements, then re-assesses every acquisition of the patient: a back-filled earlier exam
changes the baseline and the previous visit of the later ones, and re-processing a visit with
a new pipeline can make it comparable again. Re-recording the same acquisition (a retry, a
re-processing run) updates its rows in place, so history never holds duplicates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session, sessionmaker

from monitor.errors import MonitorError
from monitor.norms import NormativeModel, load_model
from monitor.segment.structures import SIDES, STRUCTURES
from monitor.settings import Settings
from monitor.tracking.assess import BILATERAL, SIDE_STATS, HistoryPoint, assess_visit
from monitor.tracking.fingerprint import ProtocolFingerprint
from monitor.tracking.identity import (
    Demographics,
    age_years,
    conflicts,
    missing_identity,
    normalise_key,
    parse_birth_date,
    parse_sex,
    parse_study_datetime,
)
from monitor.tracking.tables import (
    CONFIRMED,
    DIFFERENT_PERSON,
    NEEDS_REVIEW,
    SAME_PERSON,
    SEPARATED,
    Acquisition,
    Assessment,
    Measurement,
    Patient,
    Visit,
)

HISTORY_FIELDS = (
    "previous_study_uid",
    "baseline_study_uid",
    "previous_study_date",
    "baseline_study_date",
    "birth_date",
    "comparable",
    "not_comparable_reason",
    "age_years",
    "sex",
    "study_datetime",
    "reference_region",
    "pipeline_version",
    "norms",
    "identity_status",
)
"""Record fields the tracking step adds besides "risk" and "structures" (record_schema.md)."""

UNTRACKED = "untracked"
"""Identity status of a visit that could not be stored (no Patient ID, or no issuer when one
is required): it is assessed on its own and never joins a history."""


@dataclass(frozen=True)
class VisitInput:
    """A processed acquisition as the tracking step receives it (DICOM strings as sent)."""

    patient_id: str
    birth_date: str
    sex: str
    study_uid: str
    study_date: str
    study_time: str
    idempotency_key: str
    fingerprint: ProtocolFingerprint
    structures: Mapping[str, Any]
    """`monitor.measure.report_block` output (with "sides"); empty when QC withheld it."""
    issuer: str = ""
    series_uids: tuple[str, ...] = ()
    qc_failure: str | None = None
    """Why the measurements were withheld (segmentation QC), or None."""
    input_paths: tuple[str, ...] = field(default=(), repr=False)
    """The DICOM files it came from, for re-processing while they are retained."""


@dataclass(frozen=True)
class TrackedVisit:
    """The tracking step's contribution to the processing record."""

    structures: dict[str, Any]
    fields: dict[str, Any]
    """Record fields: risk, previous/baseline study UIDs, comparable (+ reason), age, sex,
    study datetime, reference region, pipeline version, norms, identity status."""
    reassessed_study_uids: tuple[str, ...] = ()
    """Other visits of the patient whose assessment changed (e.g. after a back-fill)."""


def record_visit(
    sessions: sessionmaker,
    visit: VisitInput,
    settings: Settings,
    model: NormativeModel | None = None,
) -> TrackedVisit:
    """Store `visit`, re-assess the patient's history and return this visit's assessment."""
    model = model or load_model(settings.norms.model_path)
    key = normalise_key(visit.patient_id, visit.issuer, settings.tracking)
    seen = Demographics(parse_birth_date(visit.birth_date), parse_sex(visit.sex))
    when = parse_study_datetime(visit.study_date, visit.study_time)
    missing = missing_identity(key, settings.tracking)
    if missing is not None:
        return _untracked(visit, seen, when, missing, model, settings)
    with sessions.begin() as session:
        patient = _patient(session, key.identifier, key.issuer, seen)
        contradicted = conflicts(Demographics(patient.birth_date, patient.sex), seen)
        if not contradicted:
            patient.birth_date = patient.birth_date or seen.birth_date
            patient.sex = patient.sex or seen.sex
        _refuse_losing_values(session, visit, settings.tracking.replace_reportable)
        row = _upsert_visit(session, patient, visit, seen, when, contradicted)
        acquisition = _upsert_acquisition(session, row, visit)
        session.flush()
        changed = reassess_patient(session, patient, model, settings)
        assessment = acquisition.assessment
        assert assessment is not None  # reassess_patient assessed every acquisition of the patient
        result = TrackedVisit(
            structures=dict(assessment.structures),
            fields=_record_fields(row, acquisition, assessment),
            reassessed_study_uids=tuple(sorted({uid for uid in changed if uid != visit.study_uid})),
        )
    return result


def stored_tracking(sessions: sessionmaker, idempotency_key: str) -> TrackedVisit | None:
    """An acquisition's latest assessment as the record carries it (None if never stored):
    what an amended report of a re-assessed visit says."""
    with sessions() as session:
        acquisition = session.scalar(
            select(Acquisition).where(Acquisition.idempotency_key == idempotency_key)
        )
        if acquisition is None or acquisition.assessment is None:
            return None
        assessment = acquisition.assessment
        return TrackedVisit(
            structures=dict(assessment.structures),
            fields=_record_fields(acquisition.visit, acquisition, assessment),
        )


def acquisition_keys(sessions: sessionmaker, study_uids: Iterable[str]) -> list[str]:
    """Idempotency keys of the stored acquisitions of these studies."""
    with sessions() as session:
        query = (
            select(Acquisition.idempotency_key)
            .join(Visit, Visit.id == Acquisition.visit_id)
            .where(Visit.study_uid.in_(list(study_uids)))
            .order_by(Acquisition.id)
        )
        return list(session.scalars(query))


def history_point(acquisition: Acquisition) -> HistoryPoint:
    """The assessment's view of a stored acquisition."""
    return HistoryPoint(
        study_uid=acquisition.visit.study_uid,
        acquired_at=acquisition.visit.study_datetime,
        fingerprint=ProtocolFingerprint(
            field_strength_t=acquisition.field_strength_t,
            echo_times_ms=tuple(acquisition.echo_times_ms),
            voxel_mm=tuple(acquisition.voxel_mm),  # type: ignore[arg-type]
            reference_region=acquisition.reference_region,
            pipeline_version=acquisition.pipeline_version,
            vendor=acquisition.vendor,
            model=acquisition.model,
            pipeline_params=acquisition.pipeline_params,
        ),
        stats={
            (m.structure, m.side): {name: getattr(m, name) for name in SIDE_STATS}
            for m in acquisition.measurements
        },
    )


def measurement_rows(structures: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(structure, side) -> statistics from a report block; absent structures are skipped."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for structure in STRUCTURES:
        block = structures.get(structure)
        if not isinstance(block, Mapping):
            continue
        rows[(structure, BILATERAL)] = {name: block.get(name) for name in SIDE_STATS}
        for side in SIDES:
            stats = block.get("sides", {}).get(side, {})
            rows[(structure, side)] = {name: stats.get(name) for name in SIDE_STATS}
    return rows


def _patient(session: Session, identifier: str, issuer: str, seen: Demographics) -> Patient:
    """The patient's row, locked (PostgreSQL) so that two workers storing visits of the same
    patient re-assess one after the other; SQLite serialises writers itself, and a transaction
    whose snapshot went stale fails and is retried by the job queue."""
    found = session.scalar(
        select(Patient)
        .where(Patient.identifier == identifier, Patient.issuer == issuer)
        .with_for_update()
    )
    if found is not None:
        return found
    patient = Patient(
        identifier=identifier,
        issuer=issuer,
        birth_date=seen.birth_date,
        sex=seen.sex,
        created_at=_now(),
    )
    session.add(patient)
    return patient


def _upsert_visit(  # noqa: PLR0913
    session: Session,
    patient: Patient,
    visit: VisitInput,
    seen: Demographics,
    when: datetime | None,
    contradicted: list[str],
) -> Visit:
    row = session.scalar(select(Visit).where(Visit.study_uid == visit.study_uid))
    if row is None:
        row = Visit(study_uid=visit.study_uid)
        session.add(row)
    row.patient = patient
    row.study_datetime = when
    row.birth_date, row.sex = seen.birth_date, seen.sex
    row.identity_status, row.identity_reason = identity_status(row.identity_review, contradicted)
    row.age_years = visit_age(row)
    return row


def identity_status(review: str | None, contradicted: list[str]) -> tuple[str, str | None]:
    """Status and reason of a visit: a person's decision wins over the header comparison."""
    if review == SAME_PERSON:
        return CONFIRMED, None
    if review == DIFFERENT_PERSON:
        return SEPARATED, "a reviewer found it belongs to another person with this Patient ID"
    if contradicted:
        differ = " and ".join(contradicted)
        return NEEDS_REVIEW, f"{differ} differ from earlier visits with this Patient ID"
    return CONFIRMED, None


def visit_age(visit: Visit) -> float | None:
    """Age at the visit: from the patient's birth date once the visit is confirmed as theirs
    (a reviewed visit's own header may hold the typo), else from the visit's header."""
    confirmed = visit.identity_status == CONFIRMED and visit.patient.birth_date is not None
    birth = visit.patient.birth_date if confirmed else visit.birth_date
    return age_years(birth, visit.study_datetime)


class ReportableVisitKept(MonitorError, ValueError):
    """A re-run with nothing reportable would have replaced a visit's reportable values."""


def _refuse_losing_values(session: Session, visit: VisitInput, allowed: bool) -> None:
    """A re-run (wrong labels, a failed registration) must not silently replace a visit's
    good values with none: once, a label file in another numbering replaced a good visit's
    history with 0.00 ml volumes. Refused unless the user asked for it (`--force`)."""
    if allowed or (visit.qc_failure is None and visit.structures):
        return
    stored = session.scalar(
        select(Acquisition).where(Acquisition.idempotency_key == visit.idempotency_key)
    )
    if stored is not None and stored.reportable:
        raise ReportableVisitKept(
            "this acquisition already has reportable values and the new result has none "
            f"({visit.qc_failure or 'no values'}); the earlier values are kept (run again with "
            "--force to replace them)"
        )


def _upsert_acquisition(session: Session, visit_row: Visit, visit: VisitInput) -> Acquisition:
    row = session.scalar(
        select(Acquisition).where(Acquisition.idempotency_key == visit.idempotency_key)
    )
    if row is None:
        row = Acquisition(idempotency_key=visit.idempotency_key)
        session.add(row)
    fingerprint = visit.fingerprint
    row.visit = visit_row
    row.series_uids = list(visit.series_uids)
    row.field_strength_t = fingerprint.field_strength_t
    row.echo_times_ms = list(fingerprint.echo_times_ms)
    row.voxel_mm = list(fingerprint.voxel_mm)
    row.vendor, row.model = fingerprint.vendor, fingerprint.model
    row.pipeline_version = fingerprint.pipeline_version
    row.pipeline_params = dict(fingerprint.pipeline_params)
    row.reference_region = fingerprint.reference_region
    row.input_paths = list(visit.input_paths)
    row.reportable = visit.qc_failure is None and bool(visit.structures)
    row.qc_reason = visit.qc_failure
    row.processed_at = _now()
    _replace_measurements(row, measurement_rows(visit.structures) if row.reportable else {})
    return row


def _replace_measurements(
    acquisition: Acquisition, rows: dict[tuple[str, str], dict[str, Any]]
) -> None:
    """Update rows in place (the unique key forbids delete-then-insert in one flush)."""
    existing = {(m.structure, m.side): m for m in acquisition.measurements}
    for key, stale in existing.items():
        if key not in rows:
            acquisition.measurements.remove(stale)
    for (structure, side), stats in rows.items():
        row = existing.get((structure, side))
        if row is None:
            row = Measurement(structure=structure, side=side)
            acquisition.measurements.append(row)
        for name, value in stats.items():
            setattr(row, name, value)


def reassess_patient(
    session: Session, patient: Patient, model: NormativeModel, settings: Settings
) -> list[str]:
    """Assess every acquisition of `patient`; the study UIDs whose assessment changed."""
    acquisitions = [a for v in patient.visits for a in v.acquisitions]
    confirmed = [history_point(a) for a in acquisitions if a.visit.identity_status == CONFIRMED]
    changed = []
    for acquisition in acquisitions:
        visit = acquisition.visit
        held = visit.identity_status != CONFIRMED
        result = assess_visit(
            history_point(acquisition),
            [] if held else confirmed,
            model,
            settings,
            age_years=visit.age_years,
            sex=visit.sex if held else patient.sex,
            qc_failure=None if acquisition.reportable else (acquisition.qc_reason or "no values"),
            identity_problem=visit.identity_reason if held else None,
        )
        values = {
            "risk_level": result.risk["level"],
            "reasons": result.risk["reasons"],
            "comparable": result.comparable,
            "not_comparable_reason": result.not_comparable_reason,
            "previous_study_uid": result.previous_study_uid,
            "baseline_study_uid": result.baseline_study_uid,
            "structures": result.structures,
            "norms": model.describe(),
        }
        row = acquisition.assessment
        if row is None:
            row = Assessment(**values, assessed_at=_now())
            acquisition.assessment = row
            changed.append(visit.study_uid)
        elif any(getattr(row, name) != value for name, value in values.items()):
            for name, value in values.items():
                setattr(row, name, value)
            row.assessed_at = _now()
            changed.append(visit.study_uid)
    session.flush()
    return changed


def _record_fields(
    visit: Visit, acquisition: Acquisition, assessment: Assessment
) -> dict[str, Any]:
    session = object_session(acquisition)
    return {
        "risk": {"level": assessment.risk_level, "reasons": list(assessment.reasons)},
        "previous_study_uid": assessment.previous_study_uid,
        "baseline_study_uid": assessment.baseline_study_uid,
        "previous_study_date": _study_date(session, assessment.previous_study_uid),
        "baseline_study_date": _study_date(session, assessment.baseline_study_uid),
        "birth_date": None if visit.birth_date is None else visit.birth_date.isoformat(),
        "comparable": assessment.comparable,
        "not_comparable_reason": assessment.not_comparable_reason,
        "age_years": visit.age_years,
        "sex": visit.sex,
        "study_datetime": None
        if visit.study_datetime is None
        else visit.study_datetime.isoformat(),
        "reference_region": acquisition.reference_region,
        "pipeline_version": acquisition.pipeline_version,
        "norms": dict(assessment.norms),
        "identity_status": visit.identity_status,
    }


def _study_date(session: Session | None, study_uid: str | None) -> str | None:
    """ISO date of a visit of the history, so reports can name what a change is against."""
    if session is None or study_uid is None:
        return None
    when = session.scalar(select(Visit.study_datetime).where(Visit.study_uid == study_uid))
    return None if when is None else when.date().isoformat()


def _untracked(  # noqa: PLR0913
    visit: VisitInput,
    seen: Demographics,
    when: datetime | None,
    problem: str,
    model: NormativeModel,
    settings: Settings,
) -> TrackedVisit:
    """A visit that cannot be attributed to anyone: its own scores, no history, no risk call."""
    point = HistoryPoint(
        study_uid=visit.study_uid,
        acquired_at=when,
        fingerprint=visit.fingerprint,
        stats=measurement_rows(visit.structures) if visit.qc_failure is None else {},
    )
    age = age_years(seen.birth_date, when)
    result = assess_visit(
        point,
        [],
        model,
        settings,
        age_years=age,
        sex=seen.sex,
        qc_failure=visit.qc_failure,
        identity_problem=problem,
    )
    return TrackedVisit(
        structures=result.structures,
        fields={
            "risk": result.risk,
            "previous_study_uid": None,
            "baseline_study_uid": None,
            "previous_study_date": None,
            "baseline_study_date": None,
            "birth_date": None if seen.birth_date is None else seen.birth_date.isoformat(),
            "comparable": result.comparable,
            "not_comparable_reason": result.not_comparable_reason,
            "age_years": age,
            "sex": seen.sex,
            "study_datetime": None if when is None else when.isoformat(),
            "reference_region": visit.fingerprint.reference_region,
            "pipeline_version": visit.fingerprint.pipeline_version,
            "norms": model.describe(),
            "identity_status": UNTRACKED,
        },
    )


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
