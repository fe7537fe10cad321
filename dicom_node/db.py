"""One SQLAlchemy metadata for every table of the node; engines come from `monitor.db`.

Tables register themselves on `Base` in their own modules. The patient history tables
(`monitor.tracking.tables`) have their own metadata and Alembic migrations; `create_schema`
applies those too, so every entry point that opens the database sees one complete schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlalchemy.orm import DeclarativeBase, sessionmaker

from monitor.db import configured_engine, database_url, make_engine
from monitor.settings import Settings
from monitor.tracking.schema import upgrade_schema

__all__ = [
    "Base",
    "configured_engine",
    "create_schema",
    "database_url",
    "make_engine",
    "open_node_db",
    "utcnow",
]


class Base(DeclarativeBase):
    """Declarative base shared by the catalogue, job queue and outbox tables."""


def create_schema(engine: Engine) -> sessionmaker:
    """Create missing node tables (import the table modules first), migrate the history
    tables, and return a session factory."""
    Base.metadata.create_all(engine)
    upgrade_schema(engine)
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def open_node_db(settings: Settings) -> Iterator[sessionmaker]:
    """Sessions over the complete schema for one command's work; the engine is disposed after,
    so a command never leaves SQLite connections (and WAL readers) behind."""
    engine = configured_engine(settings.storage)
    try:
        yield create_schema(engine)
    finally:
        engine.dispose()


def utcnow() -> datetime:
    """Naive UTC: stored and compared identically by SQLite and PostgreSQL."""
    return datetime.now(UTC).replace(tzinfo=None)
