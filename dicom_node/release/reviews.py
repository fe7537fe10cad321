"""The release gate: with `[release] require_review`, a visit's outputs wait for a reviewer.

Without review, outputs go straight to the outbox, as they always did. With it, the worker
stores one review row per finished job (its outputs, in the transaction that stores the
result, so a crash loses neither), and only an approval queues the deliveries, again in one
transaction with the decision. A rejection needs a reason and delivers nothing. Decisions are
final for that job's outputs; a later job for the same visit (an amendment, a reprocess)
brings its own review.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from sqlalchemy import JSON, DateTime, Integer, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from dicom_node.db import Base, utcnow
from dicom_node.deliver.outbox import Outbox
from monitor.settings import Settings


class ReviewState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class ReviewError(ValueError):
    """A decision that cannot be taken (unknown review, already decided, no reason)."""


class Review(Base):
    __tablename__ = "release_reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source_key: Mapped[str] = mapped_column(String(128), unique=True)
    """Idempotency key of the job whose outputs wait here."""
    study_uid: Mapped[str] = mapped_column(String(64), index=True)
    outputs: Mapped[dict[str, str]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default=ReviewState.PENDING, index=True)
    decided_by: Mapped[str | None] = mapped_column(String(64), default=None)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ReleaseGate:
    """Where finished outputs go: the outbox directly, or a review first."""

    def __init__(self, sessions: sessionmaker, settings: Settings, outbox: Outbox) -> None:
        self.sessions = sessions
        self.settings = settings
        self.outbox = outbox

    def submit(
        self, session: Session, source_key: str, study_uid: str, outputs: Mapping[str, Path]
    ) -> None:
        """Inside the caller's transaction: queue deliveries, or hold them for review. A job
        retried after its review was stored does not add a second one."""
        if not self.settings.release.require_review:
            self.outbox.add(session, source_key, study_uid, outputs)
            return
        if session.scalar(select(Review.id).where(Review.source_key == source_key)) is None:
            session.add(
                Review(
                    source_key=source_key,
                    study_uid=study_uid,
                    outputs={name: str(path) for name, path in outputs.items()},
                )
            )

    def approve(self, review_id: int, reviewer: str) -> int:
        """Release the outputs: deliveries queued with the decision; returns how many."""
        with self.sessions() as session:
            review = self._pending(session, review_id)
            review.state, review.decided_by, review.decided_at = (
                ReviewState.APPROVED,
                reviewer,
                utcnow(),
            )
            outputs = {name: Path(path) for name, path in review.outputs.items()}
            added = self.outbox.add(session, review.source_key, review.study_uid, outputs)
            session.commit()
        return added

    def reject(self, review_id: int, reviewer: str, reason: str) -> None:
        """Keep the outputs on the node; the reason is stored with the decision."""
        reason = " ".join(reason.split())
        if not reason:
            raise ReviewError("a rejection needs a reason")
        with self.sessions() as session:
            review = self._pending(session, review_id)
            review.state, review.decided_by, review.decided_at, review.reason = (
                ReviewState.REJECTED,
                reviewer,
                utcnow(),
                reason,
            )
            session.commit()

    def get(self, review_id: int) -> Review | None:
        with self.sessions() as session:
            return session.get(Review, review_id)

    def listed(self, state: str | None = None, limit: int = 100) -> list[Review]:
        """Reviews newest first, optionally of one state."""
        query = select(Review).order_by(Review.id.desc()).limit(limit)
        if state is not None:
            query = query.where(Review.state == state)
        with self.sessions() as session:
            return list(session.scalars(query))

    def counts(self) -> dict[str, int]:
        with self.sessions() as session:
            found = dict(
                session.execute(select(Review.state, func.count()).group_by(Review.state)).all()
            )
        return {state.value: int(found.get(state.value, 0)) for state in ReviewState}

    def resend(self, study_uid: str) -> int:
        """Deliver a study's outputs again (`Outbox.requeue_study`), never past a review that
        did not approve them; returns the rows now pending."""
        reason = self.unreleased_reason(study_uid)
        if reason is not None:
            raise ReviewError(reason)
        return self.outbox.requeue_study(study_uid)

    def unreleased_reason(self, study_uid: str) -> str | None:
        """Why a study's outputs may not be sent again: a review not approved."""
        with self.sessions() as session:
            states = set(session.scalars(select(Review.state).where(Review.study_uid == study_uid)))
        if ReviewState.REJECTED in states:
            return "a reviewer rejected this study's results"
        if ReviewState.PENDING in states:
            return "this study's results await review"
        return None

    @staticmethod
    def _pending(session: Session, review_id: int) -> Review:
        review = session.get(Review, review_id, with_for_update=True)
        if review is None:
            raise ReviewError(f"no review {review_id}")
        if review.state != ReviewState.PENDING:
            raise ReviewError(
                f"review {review_id} was already {review.state} by {review.decided_by}"
            )
        return review
