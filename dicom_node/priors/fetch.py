"""One patient's prior fetch: query, leave out what we already have, retrieve the rest.

Studies in the patient history or in the catalogue are never retrieved again: a study the
node has seen is either processed already or on its way through intake. Every query and
retrieve is logged as an event with hashed identifiers (never the Patient ID).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from dicom_node.logs import log_event, patient_log_ref, uid_hash
from dicom_node.priors.errors import PriorsError
from dicom_node.priors.query import PriorQuery, PriorSeries, find_prior_series
from dicom_node.priors.retrieve import RetrieveOutcome, retrieve_series
from dicom_node.priors.store import SpoolingStore
from dicom_node.receive.catalogue import Series
from monitor.settings import DestinationSettings, Settings
from monitor.tracking.tables import Visit

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class FetchPlan:
    """What the PACS has for the patient and what of it would be retrieved."""

    query: PriorQuery
    wanted: list[PriorSeries] = field(default_factory=list)
    """Matching series of unknown studies, newest `max_studies` studies."""
    known_studies: int = 0
    """Matching studies left out because the node has them already."""

    @property
    def study_uids(self) -> list[str]:
        return list(dict.fromkeys(s.study_uid for s in self.wanted))


def patient_ref(query: PriorQuery, settings: Settings) -> str:
    """The keyed patient reference the audit events carry (the ID itself never goes to a
    log; `dicom_node.logs.patient_log_ref`)."""
    return patient_log_ref(query.patient_id, query.issuer, settings.storage.data_dir)


def default_since(settings: Settings, today: date | None = None) -> str:
    """DICOM DA date `lookback_years` before today."""
    today = today or date.today()
    return f"{today.year - int(settings.priors.lookback_years):04d}{today:%m%d}"


def prior_source(settings: Settings) -> DestinationSettings:
    source = settings.prior_source()
    if source is None:
        raise PriorsError(
            "no prior source: set [priors] source to a destination of kind dicom", permanent=True
        )
    return source


def plan_fetch(
    settings: Settings,
    sessions: sessionmaker,
    query: PriorQuery,
    retry: frozenset[str] = frozenset(),
) -> FetchPlan:
    """Query the source (audited) and choose the series to retrieve; studies in `retry` (an
    earlier attempt began them) count as unknown even when the catalogue holds part of them."""
    source = prior_source(settings)
    found = find_prior_series(query, source, settings.node.ae_title, settings.priors)
    known = known_study_uids(sessions, {s.study_uid for s in found}) - retry
    fresh = [s for s in found if s.study_uid not in known]
    keep = set(list(dict.fromkeys(s.study_uid for s in fresh))[: settings.priors.max_studies])
    plan = FetchPlan(query, [s for s in fresh if s.study_uid in keep], len(known))
    log_event(
        LOGGER,
        "prior_query",
        patient=patient_ref(query, settings),
        source=source.name,
        series_found=len(found),
        studies_known=len(known),
        studies_wanted=[uid_hash(uid) for uid in plan.study_uids],
    )
    return plan


def known_study_uids(sessions: sessionmaker, study_uids: set[str]) -> set[str]:
    """Those of `study_uids` in the patient history or the catalogue."""
    if not study_uids:
        return set()
    with sessions() as session:
        visits = session.scalars(select(Visit.study_uid).where(Visit.study_uid.in_(study_uids)))
        series = session.scalars(
            select(Series.study_uid).where(Series.study_uid.in_(study_uids)).distinct()
        )
        return set(visits) | set(series)


def run_fetch(settings: Settings, sessions: sessionmaker, plan: FetchPlan) -> RetrieveOutcome:
    """Retrieve the plan's series (audited); raises `PriorsError` when any part failed."""
    source = prior_source(settings)
    store = SpoolingStore(settings.storage.data_dir, sessions)
    fields = {
        "patient": patient_ref(plan.query, settings),
        "source": source.name,
        "method": settings.priors.retrieve,
        "studies": [uid_hash(uid) for uid in plan.study_uids],
        "series": len(plan.wanted),
    }
    if not plan.wanted:
        return RetrieveOutcome()
    try:
        outcome = retrieve_series(
            plan.wanted, source, settings.node.ae_title, settings.priors, store
        )
    except PriorsError as exc:
        log_event(LOGGER, "prior_retrieve_failed", logging.WARNING, reason=str(exc), **fields)
        raise
    log_event(
        LOGGER,
        "prior_retrieve",
        completed=outcome.completed,
        warnings=outcome.warnings,
        **fields,
    )
    return outcome
