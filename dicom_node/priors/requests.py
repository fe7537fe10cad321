"""The `prior_fetches` table: one leased row per patient fetch, retried with backoff.

A row is added when a processed visit has no comparable prior (at most once per patient per
`[priors] interval_days`) or by `qsm-monitor priors fetch`; the service's fetch thread claims
it under a lease (`dicom_node.queue.leasing`, shared with jobs and the outbox), so a fetch
that failed because the PACS was down is retried after `backoff_s`, doubling, and shows in
`qsm-monitor status` until it succeeds or runs out of attempts.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from dicom_node.db import Base, utcnow
from dicom_node.queue import leasing
from monitor.settings import PriorsSettings


class PriorFetch(leasing.LeasedWork, Base):
    __tablename__ = "prior_fetches"

    patient_id: Mapped[str] = mapped_column(String(64), index=True)
    issuer: Mapped[str] = mapped_column(String(64), default="")
    since: Mapped[str] = mapped_column(String(8))
    """DICOM DA lower bound of the study dates asked for."""
    until: Mapped[str] = mapped_column(String(8), default="")
    """Inclusive upper bound: the date of the visit that asked (its priors are earlier)."""
    trigger_study_uid: Mapped[str | None] = mapped_column(String(64), default=None)
    started_study_uids: Mapped[list[str]] = mapped_column(JSON, default=list)
    """Studies an attempt began to retrieve: a retry retrieves them again even though the
    catalogue now holds part of them (a partial retrieve must not end as "known")."""
    outcome: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    """What the last successful attempt retrieved (counts, hashed study UIDs)."""


def queue_fetch(  # noqa: PLR0913 - the patient and the date range, spelled out
    session: Session,
    settings: PriorsSettings,
    patient_id: str,
    issuer: str,
    since: str,
    until: str = "",
    trigger_study_uid: str | None = None,
    now: datetime | None = None,
) -> PriorFetch | None:
    """Queue a fetch in the caller's transaction unless this patient had one within
    `interval_days` (None then)."""
    now = now or utcnow()
    recent = session.scalar(
        select(PriorFetch.id).where(
            PriorFetch.patient_id == patient_id,
            PriorFetch.issuer == issuer,
            PriorFetch.created_at > now - timedelta(days=settings.interval_days),
        )
    )
    if recent is not None:
        return None
    row = PriorFetch(
        patient_id=patient_id,
        issuer=issuer,
        since=since,
        until=until,
        trigger_study_uid=trigger_study_uid,
        max_attempts=settings.max_attempts,
        created_at=now,
        next_attempt_at=now,
    )
    session.add(row)
    return row


class PriorFetches:
    """Database side of prior fetches; every method opens its own short transaction unless it
    takes the caller's session."""

    def __init__(self, sessions: sessionmaker, settings: PriorsSettings) -> None:
        self.sessions, self.settings = sessions, settings

    def claim(self, owner: str) -> PriorFetch | None:
        return leasing.claim_next(self.sessions, PriorFetch, owner, self._lease_s())

    def note_started(self, row_id: int, study_uids: list[str]) -> None:
        """Remember the studies this fetch is about to retrieve (before it touches them)."""
        with self.sessions() as session:
            row = session.get_one(PriorFetch, row_id)
            row.started_study_uids = sorted({*row.started_study_uids, *study_uids})
            session.commit()

    def complete(self, row_id: int, owner: str, outcome: dict[str, Any]) -> bool:
        with self.sessions() as session:
            if not leasing.mark_done(session, PriorFetch, row_id, owner):
                session.rollback()
                return False
            session.get_one(PriorFetch, row_id).outcome = outcome
            session.commit()
            return True

    def fail(self, row_id: int, owner: str, error: str, permanent: bool = False) -> str | None:
        return leasing.record_failure(
            self.sessions,
            PriorFetch,
            row_id,
            owner,
            error,
            self.settings.backoff_s,
            permanent=permanent,
        )

    def counts(self) -> dict[str, int]:
        return leasing.count_by_state(self.sessions, PriorFetch)

    def unfinished_problems(self, limit: int = 10) -> list[PriorFetch]:
        """Fetches whose last attempt failed (retrying or given up), newest first."""
        with self.sessions() as session:
            query = (
                select(PriorFetch)
                .where(PriorFetch.last_error.is_not(None), PriorFetch.state != "done")
                .order_by(PriorFetch.updated_at.desc())
                .limit(limit)
            )
            return list(session.scalars(query))

    def _lease_s(self) -> float:
        """A fetch holds its lease for its timeouts and some transfer time, not hours."""
        return max(10 * self.settings.timeout_s, 300.0)
