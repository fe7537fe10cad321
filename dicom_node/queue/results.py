"""The results table: one row per idempotency key, so a result is visible exactly once.

A resend, a restart or a second worker that re-runs an acquisition whose first run crashed
after writing its result can never add a second row: the key is unique and the insert is
skipped when a row exists.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from dicom_node.db import Base, utcnow
from monitor.record import ProcessingRecord


class Result(Base):
    __tablename__ = "results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    study_uid: Mapped[str] = mapped_column(String(64), index=True)
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
    """The processing record's JSON (`monitor.record.ProcessingRecord.to_json`)."""
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    def processing_record(self) -> ProcessingRecord:
        """The stored record, typed; rows written by any version load (a minimal row takes
        its key and study UID from the row's columns)."""
        identity = {"idempotency_key": self.idempotency_key, "study_uid": self.study_uid}
        return ProcessingRecord.from_json({**identity, **self.record})


def add_result_once(session: Session, key: str, study_uid: str, record: dict[str, Any]) -> Result:
    """Insert inside the caller's transaction unless the key already has a result."""
    existing = session.scalar(select(Result).where(Result.idempotency_key == key))
    if existing is not None:
        return existing
    result = Result(idempotency_key=key, study_uid=study_uid, record=record)
    session.add(result)
    session.flush()
    return result


def results_for_study(sessions: sessionmaker, study_uid: str) -> list[Result]:
    with sessions() as session:
        return list(
            session.scalars(select(Result).where(Result.study_uid == study_uid).order_by(Result.id))
        )
