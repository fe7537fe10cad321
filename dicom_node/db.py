"""One SQLAlchemy metadata for every table of the node; engines come from `monitor.db`.

Tables register themselves on `Base` in their own modules. The patient history tables
(`monitor.tracking.tables`) have their own metadata and Alembic migrations; `create_schema`
applies those too, so every entry point that opens the database sees one complete schema.
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import DeclarativeBase, sessionmaker

from monitor.db import database_url, make_engine
from monitor.tracking.schema import upgrade_schema

__all__ = ["Base", "create_schema", "database_url", "make_engine"]


class Base(DeclarativeBase):
    """Declarative base shared by the catalogue, job queue and outbox tables."""


def create_schema(engine: Engine) -> sessionmaker:
    """Create missing node tables (import the table modules first), migrate the history
    tables, and return a session factory."""
    Base.metadata.create_all(engine)
    upgrade_schema(engine)
    return sessionmaker(engine, expire_on_commit=False)
