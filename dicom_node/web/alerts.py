"""Alerts in the console: visits whose risk came out elevated, and their acknowledgements.

An acknowledgement records who read the alert and a note (e.g. "neurologist informed"); the
alert stays listed, marked, so nothing is silently removed from view.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import DateTime, Integer, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from dicom_node.db import Base, utcnow
from dicom_node.queue.results import Result

RECENT_RESULTS = 2000
"""How many of the newest results are searched for elevated risk."""


class AlertAck(Base):
    __tablename__ = "alert_acks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source_key: Mapped[str] = mapped_column(String(128), unique=True)
    user_name: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


@dataclass(frozen=True)
class Alert:
    result_id: int
    source_key: str
    study_uid: str
    patient_id: str | None
    study_date: str | None
    reasons: tuple[str, ...]
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    note: str | None


def elevated_alerts(sessions: sessionmaker) -> list[Alert]:
    """Visits whose latest assessment is elevated, newest first, with their acknowledgement."""
    with sessions() as session:
        results = session.scalars(select(Result).order_by(Result.id.desc()).limit(RECENT_RESULTS))
        acks = {a.source_key: a for a in session.scalars(select(AlertAck))}
        alerts = []
        for result in results:
            record = result.processing_record()
            if record.risk is None or record.risk.level != "elevated":
                continue
            ack = acks.get(result.idempotency_key)
            alerts.append(
                Alert(
                    result_id=result.id,
                    source_key=result.idempotency_key,
                    study_uid=result.study_uid,
                    patient_id=record.patient_id,
                    study_date=record.study_date,
                    reasons=record.risk.reasons,
                    acknowledged_by=None if ack is None else ack.user_name,
                    acknowledged_at=None if ack is None else ack.at,
                    note=None if ack is None else ack.note,
                )
            )
    return alerts


def acknowledge(sessions: sessionmaker, result_id: int, user_name: str, note: str) -> str:
    """Mark an alert read; returns its study UID. Raises ValueError for an unknown result,
    one already acknowledged, or an empty note."""
    note = " ".join(note.split())
    if not note:
        raise ValueError("an acknowledgement needs a note")
    with sessions() as session:
        result = session.get(Result, result_id)
        if result is None:
            raise ValueError(f"no result {result_id}")
        if session.scalar(select(AlertAck).where(AlertAck.source_key == result.idempotency_key)):
            raise ValueError("this alert was acknowledged already")
        session.add(AlertAck(source_key=result.idempotency_key, user_name=user_name, note=note))
        session.commit()
        return result.study_uid
