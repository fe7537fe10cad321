"""History schema migrations: a new database, a database of the previous version, model drift."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text

import dicom_node.deliver.outbox  # noqa: F401 - register the node tables of the previous version
from dicom_node.db import Base, create_schema
from dicom_node.queue.results import Result, add_result_once
from monitor.db import make_engine
from monitor.tracking.schema import current_revision, head_revision, upgrade_schema
from monitor.tracking.tables import TrackingBase

HISTORY_TABLES = {"patients", "visits", "acquisitions", "measurements", "assessments"}


def test_empty_database_is_upgraded_to_head(db_url: str) -> None:
    engine = make_engine(db_url)
    assert upgrade_schema(engine) == head_revision()
    assert set(inspect(engine).get_table_names()) >= HISTORY_TABLES
    with engine.connect() as connection:
        assert current_revision(connection) == head_revision()
    assert upgrade_schema(engine) == head_revision()  # idempotent


def test_database_of_previous_version_keeps_its_rows(db_url: str) -> None:
    """qsm-monitor 0.1 created only the node tables (create_all, no Alembic revision)."""
    engine = make_engine(db_url)
    Base.metadata.create_all(engine)
    with engine.begin() as connection:
        assert current_revision(connection) is None
    sessions = create_schema(engine)  # what every entry point calls at start
    with sessions.begin() as session:
        add_result_once(session, "key-1", "1.2.3", {"study_uid": "1.2.3"})
    assert set(inspect(engine).get_table_names()) >= HISTORY_TABLES
    with engine.connect() as connection:
        assert current_revision(connection) == head_revision()
        assert connection.execute(text("select count(*) from patients")).scalar() == 0
    with sessions() as session:
        assert session.scalar(select(Result.study_uid)) == "1.2.3"


def test_migrations_match_the_table_classes(db_url: str) -> None:
    """A change to monitor.tracking.tables without a migration fails here."""
    engine = make_engine(db_url)
    upgrade_schema(engine)
    with engine.connect() as connection:
        differences = compare_metadata(
            MigrationContext.configure(connection), TrackingBase.metadata
        )
    assert differences == []
