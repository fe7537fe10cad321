"""The outbox: one row per destination and output, delivered with retries and backoff.

Results are written first and delivered later, so a PACS that is down for a day delays
delivery without losing it or blocking processing. Rows follow `dicom_node.queue.leasing`, which
also makes a delivery interrupted by a crash be retried instead of forgotten. A row that
used up its attempts stays ``failed`` (the dead letter) until `requeue_study` brings it back.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy import String, Text, UniqueConstraint, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from dicom_node.db import Base, utcnow
from dicom_node.deliver.items import DeliveryError, DeliveryItem
from dicom_node.deliver.sender import deliver
from dicom_node.logs import log_event, uid_hash
from dicom_node.queue import leasing
from dicom_node.queue.results import results_for_study
from monitor.settings import Settings

log = logging.getLogger(__name__)


class Delivery(leasing.LeasedWork, Base):
    __tablename__ = "outbox"
    __table_args__ = (UniqueConstraint("destination", "file_path"),)

    destination: Mapped[str] = mapped_column(String(64))
    output: Mapped[str] = mapped_column(String(64))
    """Record output name (`monitor.settings.OUTPUT_NAMES`): what routing selected."""
    file_path: Mapped[str] = mapped_column(Text)
    """The output's file, or its folder (a series is delivered as one unit)."""
    source_key: Mapped[str] = mapped_column(String(128), index=True)
    """Idempotency key of the acquisition the output came from."""
    study_uid: Mapped[str] = mapped_column(String(64), index=True)


class Outbox:
    """Deliveries to the destinations configured in `settings`."""

    def __init__(self, sessions: sessionmaker, settings: Settings) -> None:
        self.sessions = sessions
        self.settings = settings

    def enqueue(self, source_key: str, study_uid: str, outputs: Mapping[str, Path]) -> int:
        """Add missing rows (a re-run or resend adds nothing); returns how many were added."""
        with self.sessions() as session:
            added = self.add(session, source_key, study_uid, outputs)
            session.commit()
        return added

    def add(
        self, session: Session, source_key: str, study_uid: str, outputs: Mapping[str, Path]
    ) -> int:
        """`enqueue` inside the caller's transaction (a job commits its result and deliveries
        together, so a crash between the two cannot deliver a result that never completed).

        Routing is by output name only (`DestinationSettings.routed_outputs`): an output that
        was not produced (the alert when risk is not elevated) simply has no row.
        """
        added = 0
        for destination in self.settings.destinations:
            for name, path in sorted(outputs.items()):
                if name not in destination.routed_outputs:
                    continue
                exists = session.scalar(
                    select(Delivery.id).where(
                        Delivery.destination == destination.name,
                        Delivery.file_path == str(path),
                    )
                )
                if exists is None:
                    session.add(
                        Delivery(
                            destination=destination.name,
                            output=name,
                            file_path=str(path),
                            source_key=source_key,
                            study_uid=study_uid,
                            max_attempts=self.settings.outbox.max_attempts,
                        )
                    )
                    added += 1
        return added

    def deliver_next(self, owner: str) -> bool:
        """Attempt one due delivery; False when none was due (the caller may then sleep)."""
        outbox, node = self.settings.outbox, self.settings.node
        row = leasing.claim_next(self.sessions, Delivery, owner, outbox.lease_s)
        if row is None:
            return False
        by_name = {d.name: d for d in self.settings.destinations}
        fields = {"destination": row.destination, "output": row.output, "attempt": row.attempts}
        try:
            destination = by_name.get(row.destination)
            if destination is None:
                raise DeliveryError(f"destination {row.destination!r} is no longer configured")
            item = DeliveryItem(row.output, Path(row.file_path), row.study_uid)
            deliver(item, destination, node.ae_title, node.network_timeout_s)
        except (DeliveryError, OSError) as exc:
            permanent = isinstance(exc, DeliveryError) and exc.permanent
            state = leasing.record_failure(
                self.sessions,
                Delivery,
                row.id,
                owner,
                str(exc),
                outbox.backoff_s,
                permanent=permanent,
                give_up_after_s=outbox.give_up_after_h * 3600.0,
            )
            reason = " ".join(str(exc).split())
            log_event(log, "delivery_failed", logging.WARNING, state=state, reason=reason, **fields)
            return True
        with self.sessions() as session:
            leasing.mark_done(session, Delivery, row.id, owner)
            session.commit()
        log_event(log, "delivered", **fields)
        return True

    def requeue_study(self, study_uid: str) -> int:
        """Deliver a study's outputs again: done and dead-lettered rows become due now, with
        fresh attempts, and destinations added since the result get their rows.

        Safe by construction: receivers see the same SOP Instance UIDs, FHIR identifiers
        (conditional create) and file names again. Returns the number of rows now pending;
        rows being delivered right now are left to finish.
        """
        with self.sessions() as session:
            for result in results_for_study(self.sessions, study_uid):
                outputs = {n: Path(p) for n, p in result.processing_record().outputs.items()}
                self.add(session, result.idempotency_key, study_uid, outputs)
            session.flush()
            session.execute(
                update(Delivery)
                .where(
                    Delivery.study_uid == study_uid,
                    Delivery.state.in_([leasing.WorkState.DONE, leasing.WorkState.FAILED]),
                )
                .values(
                    state=leasing.WorkState.PENDING,
                    attempts=0,
                    max_attempts=self.settings.outbox.max_attempts,
                    next_attempt_at=utcnow(),
                    last_error=None,
                    updated_at=utcnow(),
                )
            )
            pending = session.scalars(
                select(Delivery.id).where(
                    Delivery.study_uid == study_uid, Delivery.state == leasing.WorkState.PENDING
                )
            ).all()
            session.commit()
        log_event(log, "deliveries_requeued", study=uid_hash(study_uid), rows=len(pending))
        return len(pending)

    def counts(self) -> dict[str, int]:
        return leasing.count_by_state(self.sessions, Delivery)

    def dead_letters(self, limit: int = 50) -> list[Delivery]:
        """Deliveries that used up their attempts, newest first (for `status`)."""
        with self.sessions() as session:
            return list(
                session.scalars(
                    select(Delivery)
                    .where(Delivery.state == leasing.WorkState.FAILED)
                    .order_by(Delivery.updated_at.desc())
                    .limit(limit)
                )
            )

    def destination_summary(self) -> dict[str, dict[str, object]]:
        """Per configured destination: rows by state, the latest error and the next attempt,
        so an operator sees which receiver is failing and when it is tried again."""
        summary: dict[str, dict[str, object]] = {}
        with self.sessions() as session:
            for destination in self.settings.destinations:
                rows = select(Delivery).where(Delivery.destination == destination.name)
                counts = dict(
                    session.execute(
                        select(Delivery.state, func.count())
                        .where(Delivery.destination == destination.name)
                        .group_by(Delivery.state)
                    ).all()
                )
                failing = session.scalars(
                    rows.where(Delivery.last_error.is_not(None))
                    .where(Delivery.state != leasing.WorkState.DONE)
                    .order_by(Delivery.updated_at.desc())
                    .limit(1)
                ).first()
                next_attempt = session.scalar(
                    select(func.min(Delivery.next_attempt_at)).where(
                        Delivery.destination == destination.name,
                        Delivery.state == leasing.WorkState.PENDING,
                    )
                )
                summary[destination.name] = {
                    "kind": destination.kind,
                    "counts": counts,
                    "last_error": failing.last_error if failing is not None else None,
                    "next_attempt_at": (
                        next_attempt.isoformat(timespec="seconds") + "Z" if next_attempt else None
                    ),
                }
        return summary

    def rows(self) -> list[Delivery]:
        with self.sessions() as session:
            return list(session.scalars(select(Delivery).order_by(Delivery.id)))
