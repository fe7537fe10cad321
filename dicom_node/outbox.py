"""The outbox: one row per output file and destination, delivered with retries and backoff.

Results are written first and delivered later, so a PACS that is down for a day delays
delivery without losing it or blocking processing. Rows follow `dicom_node.leasing`, which
also makes a delivery interrupted by a crash be retried instead of forgotten.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from dicom_node import leasing
from dicom_node.db import Base
from dicom_node.logging_utils import log_event
from dicom_node.sender import DeliveryError, deliver, is_dicom_file
from monitor.settings import DestinationSettings, Settings

log = logging.getLogger(__name__)


class Delivery(leasing.LeasedWork, Base):
    __tablename__ = "outbox"
    __table_args__ = (UniqueConstraint("destination", "file_path"),)

    destination: Mapped[str] = mapped_column(String(64))
    file_path: Mapped[str] = mapped_column(Text)
    source_key: Mapped[str] = mapped_column(String(128), index=True)
    """Idempotency key of the acquisition the file came from."""


def accepts(destination: DestinationSettings, path: Path) -> bool:
    """DICOM peers get Part 10 files only; folders get everything; FHIR is handled elsewhere."""
    if destination.kind == "dicom":
        return is_dicom_file(path)
    return destination.kind == "folder"


class Outbox:
    """Deliveries to the destinations configured in `settings`."""

    def __init__(self, sessions: sessionmaker, settings: Settings) -> None:
        self.sessions = sessions
        self.settings = settings

    def enqueue(self, source_key: str, files: Sequence[Path]) -> int:
        """Add missing rows (a re-run or resend adds nothing); returns how many were added."""
        with self.sessions() as session:
            added = self.add(session, source_key, files)
            session.commit()
        return added

    def add(self, session: Session, source_key: str, files: Sequence[Path]) -> int:
        """`enqueue` inside the caller's transaction (a job commits its result and deliveries
        together, so a crash between the two cannot deliver a result that never completed)."""
        added = 0
        for destination in self.settings.destinations:
            for path in files:
                if not accepts(destination, path):
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
                            file_path=str(path),
                            source_key=source_key,
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
        try:
            destination = by_name.get(row.destination)
            if destination is None:
                raise DeliveryError(f"destination {row.destination!r} is no longer configured")
            deliver([Path(row.file_path)], destination, node.ae_title, node.network_timeout_s)
        except (DeliveryError, OSError) as exc:
            state = leasing.record_failure(
                self.sessions, Delivery, row.id, owner, str(exc), outbox.backoff_s
            )
            log_event(
                log, "delivery_failed", logging.WARNING, destination=row.destination, state=state
            )
            return True
        with self.sessions() as session:
            leasing.mark_done(session, Delivery, row.id, owner)
            session.commit()
        log_event(log, "delivered", destination=row.destination)
        return True

    def counts(self) -> dict[str, int]:
        return leasing.count_by_state(self.sessions, Delivery)

    def rows(self) -> list[Delivery]:
        with self.sessions() as session:
            return list(session.scalars(select(Delivery).order_by(Delivery.id)))
