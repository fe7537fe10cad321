"""When to fetch priors: a processed visit with no comparable earlier visit in the history.

Called by the worker inside the transaction that stores the visit's result, so the request
and the result commit together and the fetch itself runs later, in the service's fetch
thread: retrieving priors never delays the current study's report.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dicom_node.priors.fetch import default_since
from dicom_node.priors.requests import PriorFetch, queue_fetch
from monitor.settings import Settings
from monitor.tracking.tables import Patient, Visit


def request_priors(
    session: Session, settings: Settings, study_uid: str, history: Mapping[str, Any]
) -> PriorFetch | None:
    """Queue a fetch for the visit's patient when priors are on, the visit was tracked and
    compared with nothing, and the patient had no fetch within `interval_days`."""
    if not settings.priors.enabled or history.get("previous_study_uid") is not None:
        return None
    row = session.execute(
        select(Patient.identifier, Patient.issuer, Visit.study_datetime)
        .join(Visit, Visit.patient_id == Patient.id)
        .where(Visit.study_uid == study_uid)
    ).first()
    if row is None:  # untracked (no Patient ID): there is no one to fetch priors for
        return None
    identifier, issuer, when = row
    until = f"{when:%Y%m%d}" if when is not None else ""
    since = default_since(settings)
    return queue_fetch(session, settings.priors, identifier, issuer, since, until, study_uid)
