"""Local console accounts: a name, a role and an argon2id password hash.

Roles nest: a viewer reads every page, a reviewer also approves or rejects visits and
acknowledges alerts, an admin also resends deliveries, settles identities and reads the
audit. Passwords are never stored, only argon2 hashes (argon2-cffi's defaults, rehashed
when those defaults grow).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import DateTime, Integer, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from dicom_node.db import Base, utcnow

HASHER = PasswordHasher()
MIN_PASSWORD_CHARS = 12
_UNKNOWN_USER_HASH = HASHER.hash("a password nobody has")
"""Checked for unknown names too, so the response time does not reveal which names exist."""


class Role(StrEnum):
    VIEWER = "viewer"
    REVIEWER = "reviewer"
    ADMIN = "admin"


RANK = {Role.VIEWER: 0, Role.REVIEWER: 1, Role.ADMIN: 2}


class AccountError(ValueError):
    """An account that cannot be created (name taken, weak password, unknown role)."""


class User(Base):
    __tablename__ = "web_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


def has_role(role: str, needed: Role) -> bool:
    """Whether `role` includes the rights of `needed` (roles nest)."""
    return RANK.get(Role(role), -1) >= RANK[needed]


def add_user(sessions: sessionmaker, name: str, role: str, password: str) -> None:
    name = name.strip()
    if not name or len(name) > 64 or not name.isprintable():
        raise AccountError("a user name is 1 to 64 printable characters")
    if role not in {r.value for r in Role}:
        raise AccountError(f"unknown role {role!r}; choose viewer, reviewer or admin")
    if len(password) < MIN_PASSWORD_CHARS:
        raise AccountError(f"the password needs at least {MIN_PASSWORD_CHARS} characters")
    with sessions() as session:
        if session.scalar(select(User.id).where(User.name == name)) is not None:
            raise AccountError(f"user {name!r} exists already")
        session.add(User(name=name, role=role, password_hash=HASHER.hash(password)))
        session.commit()


def authenticate(sessions: sessionmaker, name: str, password: str) -> User | None:
    """The user when the password matches, else None (same work for unknown names)."""
    with sessions() as session:
        user = session.scalar(select(User).where(User.name == name))
        try:
            HASHER.verify(_UNKNOWN_USER_HASH if user is None else user.password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if user is None:
            return None
        if HASHER.check_needs_rehash(user.password_hash):
            user.password_hash = HASHER.hash(password)
            session.commit()
        return user


def find_user(sessions: sessionmaker, name: str) -> User | None:
    with sessions() as session:
        return session.scalar(select(User).where(User.name == name))


def list_users(sessions: sessionmaker) -> list[User]:
    with sessions() as session:
        return list(session.scalars(select(User).order_by(User.name)))
