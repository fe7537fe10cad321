"""Identity review: a person settles a visit that the header comparison could not.

The history never guesses identity (`monitor.tracking.identity`), so a visit whose birth date
or sex contradicts its patient's stays out of the trend until someone who can check the
hospital's records decides. "Same person" (a typing error) brings the visit into the trend;
with `update_patient` the visit's demographics replace the patient's (the earlier record held
the error). "Different person" (a recycled or mistyped ID) keeps the visit out for good. The
decision, the reviewer and the time are stored on the visit, survive re-processing, and may be
revised; the patient's assessments are recomputed at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import sessionmaker

from monitor.errors import MonitorError
from monitor.norms import NormativeModel, load_model
from monitor.settings import Settings
from monitor.tracking.history import identity_status, reassess_patient, visit_age
from monitor.tracking.identity import Demographics, conflicts
from monitor.tracking.tables import (
    CONFIRMED,
    DIFFERENT_PERSON,
    NEEDS_REVIEW,
    SAME_PERSON,
    Patient,
    Visit,
)

DECISIONS = (SAME_PERSON, DIFFERENT_PERSON)


class ReviewError(MonitorError, ValueError):
    """The decision cannot be applied (unknown study, contradictory options)."""


@dataclass(frozen=True)
class ReviewItem:
    """A visit as the reviewer needs to see it: both sets of demographics side by side."""

    study_uid: str
    patient_identifier: str
    patient_issuer: str
    study_datetime: datetime | None
    status: str
    reason: str | None
    visit_birth_date: date | None
    visit_sex: str | None
    patient_birth_date: date | None
    patient_sex: str | None
    review: str | None
    reviewer: str | None
    reviewed_at: datetime | None


def review_items(sessions: sessionmaker, include_decided: bool = False) -> list[ReviewItem]:
    """Visits waiting for a decision (and, on request, those already decided), oldest first."""
    waiting = Visit.identity_status == NEEDS_REVIEW
    condition = or_(waiting, Visit.identity_review.is_not(None)) if include_decided else waiting
    with sessions() as session:
        visits = session.scalars(select(Visit).where(condition).order_by(Visit.id)).all()
        return [_item(visit) for visit in visits]


def resolve_identity(  # noqa: PLR0913
    sessions: sessionmaker,
    study_uid: str,
    decision: str,
    reviewer: str,
    settings: Settings,
    update_patient: bool = False,
    model: NormativeModel | None = None,
) -> tuple[ReviewItem, list[str]]:
    """Apply `decision` to the visit of `study_uid`; returns the visit as now stored and the
    study UIDs of the patient whose assessment changed (they may need their reports re-sent)."""
    if decision not in DECISIONS:
        raise ReviewError(f"decision must be one of {', '.join(DECISIONS)}")
    if not reviewer.strip():
        raise ReviewError("name the reviewer: the decision is part of the patient's record")
    if update_patient and decision != SAME_PERSON:
        raise ReviewError("the patient's demographics can only be taken from a visit of theirs")
    model = model or load_model(settings.norms.model_path)
    with sessions.begin() as session:
        visit = session.scalar(select(Visit).where(Visit.study_uid == study_uid))
        if visit is None:
            raise ReviewError("no visit with this Study Instance UID in the history")
        patient = visit.patient
        decided = [visit]
        if update_patient:
            patient.birth_date = visit.birth_date or patient.birth_date
            patient.sex = visit.sex or patient.sex
            decided += _now_contradicting(patient, exclude=visit)
        for each in decided:
            _decide(each, decision, reviewer)
        for each in patient.visits:
            each.age_years = visit_age(each)
        session.flush()
        changed = reassess_patient(session, patient, model, settings)
        return _item(visit), changed


def _now_contradicting(patient: Patient, exclude: Visit) -> list[Visit]:
    """Confirmed visits whose headers carry the demographics the reviewer just corrected: the
    same person by the reviewer's decision, so they are marked reviewed too (otherwise
    re-processing them would hold them for review)."""
    corrected = Demographics(patient.birth_date, patient.sex)
    return [
        each
        for each in patient.visits
        if each is not exclude
        and each.identity_status == CONFIRMED
        and conflicts(corrected, Demographics(each.birth_date, each.sex))
    ]


def _decide(visit: Visit, decision: str, reviewer: str) -> None:
    visit.identity_review = decision
    visit.identity_reviewer = reviewer.strip()[:64]
    visit.identity_reviewed_at = datetime.now(UTC).replace(tzinfo=None)
    visit.identity_status, visit.identity_reason = identity_status(decision, [])


def _item(visit: Visit) -> ReviewItem:
    patient = visit.patient
    return ReviewItem(
        study_uid=visit.study_uid,
        patient_identifier=patient.identifier,
        patient_issuer=patient.issuer,
        study_datetime=visit.study_datetime,
        status=visit.identity_status,
        reason=visit.identity_reason,
        visit_birth_date=visit.birth_date,
        visit_sex=visit.sex,
        patient_birth_date=patient.birth_date,
        patient_sex=patient.sex,
        review=visit.identity_review,
        reviewer=visit.identity_reviewer,
        reviewed_at=visit.identity_reviewed_at,
    )
