"""Leased work rows: the claim, heartbeat and retry rules shared by the job queue and the outbox.

A row is claimed with one conditional UPDATE (``WHERE id = ? AND <still claimable>``) and a
rowcount check, which is atomic on SQLite (one writer at a time) and on PostgreSQL (the WHERE
is re-evaluated after a concurrent writer commits), so two workers never both win a row. On
PostgreSQL the candidate is picked with ``SELECT ... FOR UPDATE SKIP LOCKED`` so that nodes
polling together take different rows instead of racing for the same one. A
claim is a lease, not ownership: a worker that crashes stops renewing it, and once it expires
the row is claimable again. Attempts are counted at claim time so that a job that kills its
worker every time still runs out of attempts instead of looping forever.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import DateTime, Integer, String, Text, Update, and_, func, or_, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from dicom_node.db import utcnow

MAX_BACKOFF_S = 6 * 3600.0
"""Retry delays stop doubling here so a long outage still retries a few times a day."""

LOST_WORKER_REASON = "worker stopped responding (lease expired) on the last attempt"


class WorkState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class LeasedWork:
    """Columns every leased row carries (mixed into a declarative table)."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    state: Mapped[str] = mapped_column(String(16), default=WorkState.PENDING, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    lease_owner: Mapped[str | None] = mapped_column(String(128), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


W = TypeVar("W", bound=LeasedWork)


def backoff_delay_s(base_s: float, attempts: int) -> float:
    """Exponential backoff: base, 2*base, 4*base ... after the 1st, 2nd, 3rd failed attempt."""
    return min(base_s * 2.0 ** max(attempts - 1, 0), MAX_BACKOFF_S)


def _claimable(model: type[W], now: datetime) -> ColumnElement[bool]:
    return or_(
        and_(model.state == WorkState.PENDING, model.next_attempt_at <= now),
        and_(
            model.state == WorkState.RUNNING,
            model.lease_expires_at < now,
            model.attempts < model.max_attempts,
        ),
    )


def _fail_lost(session: Session, model: type[W], now: datetime) -> None:
    """Rows whose worker vanished on their last allowed attempt will never be claimed: fail them.

    Looked up before updating so that idle polling stays read-only (an SQLite write would
    take the database lock the listener needs for every stored instance).
    """
    lost = and_(
        model.state == WorkState.RUNNING,
        model.lease_expires_at < now,
        model.attempts >= model.max_attempts,
    )
    if session.scalar(select(model.id).where(lost).limit(1)) is None:
        return
    session.execute(
        update(model)
        .where(lost)
        .values(
            state=WorkState.FAILED, last_error=LOST_WORKER_REASON, lease_owner=None, updated_at=now
        )
    )


def claim_next(
    sessions: sessionmaker, model: type[W], owner: str, lease_s: float, now: datetime | None = None
) -> W | None:
    """Take the oldest due row for `owner`, or None when nothing is due."""
    now = now or utcnow()
    with sessions() as session:
        _fail_lost(session, model, now)
        session.commit()
        if session.get_bind().dialect.name == "postgresql":
            return _claim_skip_locked(session, model, owner, lease_s, now)
        candidates = session.scalars(
            select(model.id).where(_claimable(model, now)).order_by(model.id).limit(16)
        ).all()
        for row_id in candidates:
            won = session.execute(_claim_update(model, row_id, owner, lease_s, now)).rowcount
            session.commit()
            if won == 1:
                return session.get(model, row_id)
    return None


def _claim_skip_locked(
    session: Session, model: type[W], owner: str, lease_s: float, now: datetime
) -> W | None:
    """PostgreSQL: lock the oldest due row, skipping rows other nodes hold locked right now.

    Many nodes polling one queue would otherwise all pick the same oldest row and all but one
    lose the conditional UPDATE; with SKIP LOCKED each takes a different row in one round trip.
    The UPDATE keeps the claimable condition, so the rule stays the one SQLite uses.
    """
    row_id = session.scalar(
        select(model.id)
        .where(_claimable(model, now))
        .order_by(model.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    if row_id is None:
        session.rollback()
        return None
    won = session.execute(_claim_update(model, row_id, owner, lease_s, now)).rowcount
    session.commit()
    return session.get(model, row_id) if won == 1 else None


def _claim_update(model: type[W], row_id: int, owner: str, lease_s: float, now: datetime) -> Update:
    """The claim itself: conditional on the row still being claimable, counting the attempt."""
    return (
        update(model)
        .where(model.id == row_id, _claimable(model, now))
        .values(
            state=WorkState.RUNNING,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_s),
            attempts=model.attempts + 1,
            updated_at=now,
        )
    )


def _owned(model: type[W], row_id: int, owner: str) -> ColumnElement[bool]:
    return and_(model.id == row_id, model.lease_owner == owner, model.state == WorkState.RUNNING)


def heartbeat(
    sessions: sessionmaker, model: type[W], row_id: int, owner: str, lease_s: float
) -> bool:
    """Extend the lease; False means it was lost (expired and taken) and the work must stop."""
    now = utcnow()
    with sessions() as session:
        won = session.execute(
            update(model)
            .where(_owned(model, row_id, owner))
            .values(lease_expires_at=now + timedelta(seconds=lease_s), updated_at=now)
        ).rowcount
        session.commit()
    return won == 1


def mark_done(session: Session, model: type[W], row_id: int, owner: str) -> bool:
    """Mark done inside the caller's transaction, so a result and its state commit together."""
    return (
        session.execute(
            update(model)
            .where(_owned(model, row_id, owner))
            .values(
                state=WorkState.DONE,
                lease_owner=None,
                lease_expires_at=None,
                last_error=None,
                updated_at=utcnow(),
            )
        ).rowcount
        == 1
    )


def record_failure(
    sessions: sessionmaker,
    model: type[W],
    row_id: int,
    owner: str,
    error: str,
    backoff_s: float,
    now: datetime | None = None,
    permanent: bool = False,
    give_up_after_s: float | None = None,
) -> str | None:
    """Schedule a retry with backoff, or fail for good after the last attempt.

    `permanent` fails at once: bad input fails the same way every time, so retrying it only
    delays the answer. `give_up_after_s` also fails for good once the row is that old (a
    receiver down for days should not be retried for ever on a backoff that grew to hours).
    Returns the new state, or None when the lease had already been lost.
    """
    now = now or utcnow()
    with sessions() as session:
        row = session.get(model, row_id)
        if row is None or row.lease_owner != owner or row.state != WorkState.RUNNING:
            return None
        too_old = give_up_after_s is not None and now - row.created_at > timedelta(
            seconds=give_up_after_s
        )
        final = permanent or too_old or row.attempts >= row.max_attempts
        values: dict[str, Any] = {
            "state": WorkState.FAILED if final else WorkState.PENDING,
            "next_attempt_at": now + timedelta(seconds=backoff_delay_s(backoff_s, row.attempts)),
            "lease_owner": None,
            "lease_expires_at": None,
            "last_error": error[:2000],
            "updated_at": now,
        }
        won = session.execute(update(model).where(_owned(model, row_id, owner)).values(values))
        session.commit()
        return str(values["state"]) if won.rowcount == 1 else None


def release(sessions: sessionmaker, model: type[W], row_id: int, owner: str) -> bool:
    """Give a row back untouched (clean shutdown mid-work): the attempt does not count."""
    with sessions() as session:
        won = session.execute(
            update(model)
            .where(_owned(model, row_id, owner))
            .values(
                state=WorkState.PENDING,
                attempts=model.attempts - 1,
                lease_owner=None,
                lease_expires_at=None,
                next_attempt_at=utcnow(),
                updated_at=utcnow(),
            )
        ).rowcount
        session.commit()
    return won == 1


def count_by_state(sessions: sessionmaker, model: type[W]) -> dict[str, int]:
    """Rows per state, every state present (zero when empty) so dashboards see stable keys."""
    with sessions() as session:
        rows = session.execute(select(model.state, func.count()).group_by(model.state)).all()
    counts = {state.value: 0 for state in WorkState}
    counts.update({state: int(n) for state, n in rows})
    return counts
