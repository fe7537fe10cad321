"""One SQLAlchemy metadata and engine factory for every table of the node.

SQLite (WAL mode) inside the data directory is the embedded default; a PostgreSQL URL lets
several nodes share one queue. Tables register themselves on `Base` in their own modules.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import DeclarativeBase, sessionmaker


class Base(DeclarativeBase):
    """Declarative base shared by the catalogue, job queue and outbox tables."""


def database_url(data_dir: Path, url: str | None = None) -> str:
    """An explicit URL wins; otherwise an SQLite file inside the data directory."""
    if url:
        return url
    data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(data_dir / 'qsm-monitor.sqlite3').resolve()}"


def make_engine(url: str) -> Engine:
    """Engine with SQLite tuned for many short writers (WAL, busy timeout, durable commits)."""
    is_sqlite = url.startswith("sqlite")
    engine = create_engine(
        url,
        connect_args={"timeout": 30, "check_same_thread": False} if is_sqlite else {},
        pool_pre_ping=not is_sqlite,
    )
    if is_sqlite:

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

    return engine


def create_schema(engine: Engine) -> sessionmaker:
    """Create missing tables (import the table modules first) and return a session factory."""
    Base.metadata.create_all(engine)
    return sessionmaker(engine, expire_on_commit=False)
