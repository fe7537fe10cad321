"""The service's fetch thread: claim a queued prior fetch, plan it, retrieve, record.

A thread, not a worker process: a fetch waits on the network, and C-MOVE's instances arrive
at the listener, which runs in the same service process anyway.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy.orm import sessionmaker

from dicom_node.logs import log_event, uid_hash
from dicom_node.priors.errors import PriorsError
from dicom_node.priors.fetch import patient_ref, plan_fetch, run_fetch
from dicom_node.priors.query import PriorQuery
from dicom_node.priors.requests import PriorFetches
from monitor.settings import Settings

LOGGER = logging.getLogger(__name__)


class PriorFetcher:
    """Runs queued fetches one at a time; `run_once` is what tests drive directly."""

    def __init__(self, settings: Settings, sessions: sessionmaker, owner: str) -> None:
        self.settings, self.sessions, self.owner = settings, sessions, owner
        self.fetches = PriorFetches(sessions, settings.priors)

    def run_once(self) -> bool:
        """Attempt one due fetch; False when none was due."""
        row = self.fetches.claim(self.owner)
        if row is None:
            return False
        query = PriorQuery(row.patient_id, row.issuer, row.since, row.until)
        fields = {"fetch": row.id, "patient": patient_ref(query, self.settings)}
        try:
            retry = frozenset(row.started_study_uids or ())
            plan = plan_fetch(self.settings, self.sessions, query, retry)
            self.fetches.note_started(row.id, plan.study_uids)
            outcome = run_fetch(self.settings, self.sessions, plan)
        except PriorsError as exc:
            state = self.fetches.fail(row.id, self.owner, str(exc), exc.permanent)
            log_event(
                LOGGER,
                "prior_fetch_failed",
                logging.WARNING,
                state=state,
                reason=str(exc),  # hosts, AE titles and counts: no patient data
                **fields,
            )
            return True
        except Exception as exc:  # a bug or the database: retry later, never kill the thread
            LOGGER.exception("prior_fetch_crashed")
            self.fetches.fail(row.id, self.owner, f"{type(exc).__name__} (see the log)")
            return True
        record = {
            "studies": [uid_hash(uid) for uid in plan.study_uids],
            "series": len(plan.wanted),
            "instances": outcome.completed + outcome.warnings,
            "studies_known": plan.known_studies,
        }
        self.fetches.complete(row.id, self.owner, record)
        log_event(LOGGER, "prior_fetch_done", **fields, **record)
        return True

    def run(self, stop: threading.Event) -> None:
        """Until `stop`: fetch what is due, else wait `poll_interval_s`."""
        while not stop.is_set():
            try:
                busy = self.run_once()
            except Exception:  # the database may be busy; never end fetching for good
                LOGGER.exception("prior_fetch_loop_failed")
                busy = False
            if not busy:
                stop.wait(self.settings.priors.poll_interval_s)
