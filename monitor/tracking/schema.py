"""Apply the patient-history migrations and open sessions on the history tables.

Every entry point that can write history (service start, `qsm-monitor process`, the pipeline's
tracking step, `reprocess`) calls `open_history`, so a database created by an older version is
upgraded before the first new visit is stored. Upgrading an up-to-date database only reads the
revision. Two processes upgrading the same new database at once: the loser's DDL fails, it
re-reads the revision and carries on if the winner reached the head.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import sessionmaker

from monitor.db import configured_engine
from monitor.settings import Settings

MIGRATIONS = Path(__file__).with_name("migrations")


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest migration shipped with this version."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {MIGRATIONS}")
    return head


def current_revision(connection: Connection) -> str | None:
    """The database's revision; None for a database without history tables."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade_schema(engine: Engine) -> str:
    """Bring the history tables to the head revision; returns it."""
    head = head_revision()
    with engine.connect() as connection:
        if current_revision(connection) == head:
            return head
    config = _config()
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except (OperationalError, ProgrammingError):
        with engine.connect() as connection:
            if current_revision(connection) != head:
                raise
    return head


def history_sessions(engine: Engine) -> sessionmaker:
    """Upgrade if needed, then a session factory for the history tables."""
    upgrade_schema(engine)
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def open_history(settings: Settings) -> Iterator[sessionmaker]:
    """Session factory over the configured database for one short piece of work; the engine
    is disposed afterwards so commands and pipeline steps never leave connections open."""
    engine = configured_engine(settings.storage)
    try:
        yield history_sessions(engine)
    finally:
        engine.dispose()
