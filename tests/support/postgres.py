"""A throw-away PostgreSQL cluster for the tests: initdb and pg_ctl in a temporary folder.

Nothing assumes a server is already running: the cluster is made for the session on a free
loopback port, with trust authentication (only 127.0.0.1 listens, no Unix socket) and without
fsync (durability of a test cluster buys nothing and costs seconds). PostgreSQL refuses to run
as root, so when the tests run as root the server runs as `nobody` in a folder owned by it.
Each test gets its own database, so tests stay independent without cleaning tables.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from support.node_helpers import free_port

__all__ = ["PostgresServer", "postgres_bin_dir", "running_postgres"]

SERVER_USER = "nobody"
"""Unprivileged account that runs the server when the tests run as root."""


def postgres_bin_dir() -> Path | None:
    """Folder with initdb and pg_ctl: on PATH, else the newest Debian version folder."""
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: p.parts)
    return versions[-1].parent if versions else None


class PostgresServer:
    """One running cluster; `new_database` hands out fresh, empty databases."""

    def __init__(self, bin_dir: Path, root: Path, port: int) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.port = port
        self._names = itertools.count(1)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL with the psycopg 3 driver, as `[storage] database_url` takes it."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        name = f"test_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def run(self, *args: str) -> None:
        """Run a PostgreSQL program as the server's user (never as root)."""
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self.run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories='' "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=400 -c shared_buffers=32MB"
        )
        self.run(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-o",
            options,
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self) -> None:
        self.run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """Start a cluster, yield it, stop it and remove its folder whatever happens."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL server programs (initdb, pg_ctl) are not installed")
    # /tmp itself, not pytest's per-user folder: `nobody` must be able to reach the data dir.
    root = Path(tempfile.mkdtemp(prefix="qsm-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, user=SERVER_USER)
    server = PostgresServer(bin_dir, root, free_port())
    try:
        server.start()
        yield server
    finally:
        if (server.data_dir / "postmaster.pid").exists():
            server.stop()
        shutil.rmtree(root, ignore_errors=True)
