"""Database URL and engine factory shared by the node's tables and the patient history.

SQLite (WAL mode) inside the data directory is the embedded default; a PostgreSQL URL lets
several nodes share one database. It lives in `monitor` because the patient history
(`monitor.tracking`) needs an engine and `monitor` never imports `dicom_node`.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event

from monitor.errors import MonitorError
from monitor.settings import StorageSettings

__all__ = [
    "DataFolderError",
    "configured_engine",
    "database_url",
    "has_data",
    "make_engine",
    "sqlite_path",
]


class DataFolderError(MonitorError, OSError):
    """The configured data folder cannot be created or used (a path, not patient data)."""


def sqlite_path(data_dir: Path) -> Path:
    """Where the embedded database lives inside the data folder."""
    return data_dir / "qsm-monitor.sqlite3"


def has_data(storage: StorageSettings) -> bool:
    """Whether there is a database to read: a configured URL, or the SQLite file. Commands
    that only read check this first, so they never create an empty data folder."""
    return bool(storage.database_url) or sqlite_path(storage.data_dir).is_file()


def database_url(data_dir: Path, url: str | None = None) -> str:
    """An explicit URL wins; otherwise an SQLite file inside the data directory."""
    if url:
        return url
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataFolderError(
            f"data folder {data_dir} cannot be used ({exc.strerror or exc}); set "
            "[storage] data_dir or QSM_MONITOR_STORAGE__DATA_DIR to a writable folder"
        ) from exc
    return f"sqlite:///{sqlite_path(data_dir).resolve()}"


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
