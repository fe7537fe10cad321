"""Series that arrived but could not become an acquisition, with their reason, for `status`.

Intake logs a rejection ("no phase images", "echo times differ ...") but an operator looking at
`status` saw nothing: the study had simply vanished. Each rejected series keeps one row here
(its latest reason) until a later arrival lets it join an acquisition, which clears it. A new
table, so `create_all` adds it to existing databases without a migration.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import DateTime, String, Text, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from dicom_node.db import Base, utcnow

__all__ = ["NotProcessedSeries", "clear_not_processed", "not_processed", "note_not_processed"]


class NotProcessedSeries(Base):
    __tablename__ = "not_processed_series"

    series_uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    study_uid: Mapped[str] = mapped_column(String(64), index=True)
    reason: Mapped[str] = mapped_column(Text)
    noted_at: Mapped[datetime] = mapped_column(DateTime)


def note_not_processed(
    session: Session, study_uid: str, series_uids: Iterable[str], reason: str
) -> None:
    """Record (or update) why these series of the study were not processed."""
    for series_uid in series_uids:
        row = session.get(NotProcessedSeries, series_uid)
        if row is None:
            row = NotProcessedSeries(series_uid=series_uid, study_uid=study_uid)
            session.add(row)
        row.reason, row.noted_at = reason, utcnow()


def clear_not_processed(session: Session, series_uids: Iterable[str]) -> None:
    """These series became part of an acquisition after all."""
    uids = list(series_uids)
    if uids:
        session.execute(delete(NotProcessedSeries).where(NotProcessedSeries.series_uid.in_(uids)))


def not_processed(sessions: sessionmaker, limit: int = 20) -> list[NotProcessedSeries]:
    """The most recently noted series that were not processed, newest first."""
    with sessions() as session:
        query = select(NotProcessedSeries).order_by(NotProcessedSeries.noted_at.desc())
        return list(session.scalars(query.limit(limit)))
