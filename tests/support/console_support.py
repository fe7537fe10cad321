"""Shared pieces of the web console tests: a node database with accounts and held visits."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import sessionmaker

from dicom_node.db import configured_engine
from dicom_node.deliver.outbox import Outbox
from dicom_node.queue.results import add_result_once
from dicom_node.release import ReleaseGate
from dicom_node.web import add_user, console_sessions
from monitor.settings import Settings, load_settings

PASSWORDS = {
    "alice": "alice-admin-pass-1",
    "rita": "rita-reviewer-pass",
    "victor": "victor-viewer-pass",
}
ROLES = {"alice": "admin", "rita": "reviewer", "victor": "viewer"}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class ConsoleNode:
    settings: Settings
    sessions: sessionmaker
    gate: ReleaseGate


def console_settings(tmp_path: Path, db_url: str, **web: object) -> Settings:
    return load_settings(
        None,
        storage={"data_dir": tmp_path / "data", "database_url": db_url},
        destinations=[{"name": "drop", "kind": "folder", "path": tmp_path / "drop"}],
        release={"require_review": True},
        web={"enabled": True, **web},
    )


def console_node(settings: Settings) -> ConsoleNode:
    sessions = console_sessions(configured_engine(settings.storage))
    for name, role in ROLES.items():
        add_user(sessions, name, role, PASSWORDS[name])
    gate = ReleaseGate(sessions, settings, Outbox(sessions, settings))
    return ConsoleNode(settings, sessions, gate)


def hold_visit(node: ConsoleNode, key: str, study_uid: str, record: dict, outputs: dict) -> None:
    """A finished job's result and outputs, held by the gate as the worker holds them."""
    with node.sessions() as session:
        stored = {name: str(path) for name, path in outputs.items()}
        add_result_once(session, key, study_uid, {**record, "outputs": stored})
        node.gate.submit(session, key, study_uid, outputs)
        session.commit()


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no form token"
    return found.group(1)
