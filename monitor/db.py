"""Database URL and engine factory shared by the node's tables and the patient history.

SQLite (WAL mode) inside the data directory is the embedded default; a PostgreSQL URL lets
several nodes share one database. It lives in `monitor` because the patient history
(`monitor.tracking`) needs an engine and `monitor` never imports `dicom_node`.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event

from monitor.settings import StorageSettings


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


def configured_engine(storage: StorageSettings) -> Engine:
    """The configured database: the URL from settings, else SQLite in the data directory."""
    return make_engine(database_url(storage.data_dir, storage.database_url))
