"""The audit trail: who did what, when, on which object. Written in the same request as
the action; read by admins in the console. Never holds passwords or patient names."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from dicom_node.db import Base, utcnow


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    user_name: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(128), default="")
    detail: Mapped[str] = mapped_column(Text, default="")


def record_action(
    sessions: sessionmaker, user_name: str, action: str, target: str = "", detail: str = ""
) -> None:
    with sessions() as session:
        session.add(AuditEntry(user_name=user_name, action=action, target=target, detail=detail))
        session.commit()


def recent_actions(sessions: sessionmaker, limit: int = 200) -> list[AuditEntry]:
    with sessions() as session:
        return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)))
