"""The processing queue: one job per acquisition, keyed by the acquisition's idempotency key.

Jobs live in the database so that they survive restarts and can be shared by several worker
processes (or nodes, with PostgreSQL). Claiming, leases and retries follow
`dicom_node.queue.leasing`; this module adds the idempotent enqueue and the exactly-once completion
(result row and ``done`` state in one transaction, only while the lease is still ours).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from dicom_node.db import Base
from dicom_node.queue import leasing
from dicom_node.queue.results import add_result_once
from monitor.settings import JobsSettings


class Job(leasing.LeasedWork, Base):
    __tablename__ = "jobs"

    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    study_uid: Mapped[str] = mapped_column(String(64), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    """What a worker needs to rebuild the acquisition: the instance file paths."""


class JobQueue:
    """Database-backed job queue; every method opens its own short transaction."""

    def __init__(self, sessions: sessionmaker, settings: JobsSettings) -> None:
        self.sessions = sessions
        self.settings = settings

    def enqueue(self, key: str, study_uid: str, payload: dict[str, Any]) -> Job:
        """Add a job, or return the existing one for `key` (a resend is a no-op)."""
        with self.sessions() as session:
            job = self.add(session, key, study_uid, payload)
            if job.id is not None:
                return job
            try:
                session.commit()
            except IntegrityError:  # another process enqueued the same key meanwhile
                session.rollback()
                return session.scalars(select(Job).where(Job.idempotency_key == key)).one()
            return job

    def add(self, session: Session, key: str, study_uid: str, payload: dict[str, Any]) -> Job:
        """`enqueue` inside the caller's transaction (a finished job queues the amendments it
        caused together with its result): the existing job for `key`, or a new one (no id
        until the caller flushes or commits)."""
        existing = session.scalar(select(Job).where(Job.idempotency_key == key))
        if existing is not None:
            return existing
        job = Job(
            idempotency_key=key,
            study_uid=study_uid,
            payload=payload,
            max_attempts=self.settings.max_attempts,
        )
        session.add(job)
        return job

    def claim(self, owner: str, now: datetime | None = None) -> Job | None:
        return leasing.claim_next(self.sessions, Job, owner, self.settings.lease_s, now)

    def heartbeat(self, job_id: int, owner: str) -> bool:
        return leasing.heartbeat(self.sessions, Job, job_id, owner, self.settings.lease_s)

    def complete(
        self,
        job: Job,
        owner: str,
        record: dict[str, Any],
        also: Callable[[Session], object] | None = None,
    ) -> bool:
        """Store the result and mark done atomically; False if the lease was lost meanwhile.

        `also` writes more rows in the same transaction (the job's deliveries).
        """
        with self.sessions() as session:
            if not leasing.mark_done(session, Job, job.id, owner):
                session.rollback()
                return False
            add_result_once(session, job.idempotency_key, job.study_uid, record)
            if also is not None:
                also(session)
            session.commit()
            return True

    def fail(
        self,
        job_id: int,
        owner: str,
        error: str,
        now: datetime | None = None,
        permanent: bool = False,
    ) -> str | None:
        """Retry later with backoff, or ``failed`` after the last attempt (returns the state)."""
        return leasing.record_failure(
            self.sessions, Job, job_id, owner, error, self.settings.backoff_s, now, permanent
        )

    def release(self, job_id: int, owner: str) -> bool:
        return leasing.release(self.sessions, Job, job_id, owner)

    def get(self, job_id: int) -> Job | None:
        with self.sessions() as session:
            return session.get(Job, job_id)

    def counts(self) -> dict[str, int]:
        return leasing.count_by_state(self.sessions, Job)

    def recent(self, limit: int = 20) -> list[Job]:
        with self.sessions() as session:
            return list(session.scalars(select(Job).order_by(Job.updated_at.desc()).limit(limit)))
