"""Console sessions, kept in the database so any node behind a load balancer knows them.

The cookie holds a random token; the table holds only its SHA-256, so a copy of the database
does not let anyone log in. Each session has its own CSRF token, which every form posts back.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import DateTime, Integer, String, delete, select
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from dicom_node.db import Base, utcnow


class WebSession(Base):
    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_name: Mapped[str] = mapped_column(String(64))
    csrf_token: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(DateTime)


@dataclass(frozen=True)
class SignedIn:
    """Who a request belongs to and the CSRF token its forms must carry."""

    user_name: str
    role: str
    csrf_token: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(sessions: sessionmaker, user_name: str, hours: float) -> str:
    """A new session; returns the cookie token (shown once, stored hashed)."""
    token = secrets.token_urlsafe(32)
    with sessions() as session:
        session.execute(delete(WebSession).where(WebSession.expires_at < utcnow()))
        session.add(
            WebSession(
                token_sha256=_digest(token),
                user_name=user_name,
                csrf_token=secrets.token_urlsafe(32),
                expires_at=utcnow() + timedelta(hours=hours),
            )
        )
        session.commit()
    return token


def session_for(sessions: sessionmaker, token: str | None) -> WebSession | None:
    """The live session of a cookie token, None when unknown or expired."""
    if not token:
        return None
    with sessions() as session:
        row = session.scalar(select(WebSession).where(WebSession.token_sha256 == _digest(token)))
    if row is None or row.expires_at < utcnow():
        return None
    return row


def close_session(sessions: sessionmaker, token: str | None) -> None:
    if token:
        with sessions() as session:
            session.execute(delete(WebSession).where(WebSession.token_sha256 == _digest(token)))
            session.commit()


def csrf_matches(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected, given)
