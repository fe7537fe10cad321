"""Shared test configuration."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.postgres import PostgresServer, running_postgres

from monitor.phantom import Phantom, PhantomConfig, simulate_phantom

DATABASE_BACKENDS = ["sqlite", "postgresql"]
"""Every database-touching test runs on both: the embedded default and the multi-node one."""


@pytest.fixture(scope="session")
def realistic_phantom() -> Phantom:
    """The default oblique 1x1x2 mm head phantom (seed 0), simulated once per session: the
    reconstruction accuracy and the end-to-end measurement tests judge the same subject."""
    return simulate_phantom(PhantomConfig(), rng=0)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throw-away PostgreSQL cluster for the session, started on first use only."""
    with running_postgres() as server:
        yield server


@pytest.fixture(params=DATABASE_BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: an SQLite file in the test's folder, or a new database on the
    session's PostgreSQL cluster."""
    if request.param == "sqlite":
        return f"sqlite:///{(tmp_path / 'node.sqlite3').resolve()}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()
