"""Service state for `qsm-monitor status` and container health checks.

`serve` writes a small state file into the data directory; `status` reads it, checks that the
process lives and that the DICOM port answers C-ECHO (the real test of "can scanners send"),
and adds queue and outbox counts from the database.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from dicom_node.db import open_node_db
from dicom_node.deliver.outbox import Outbox
from dicom_node.files import write_durably
from dicom_node.process.compute import compute_engine
from dicom_node.process.pipeline import plain_reason
from dicom_node.queue.jobs import JobQueue
from monitor.settings import Settings

STATE_FILE = "service.json"
ECHO_TIMEOUT_S = 5.0
ANY_ADDRESS = {"0.0.0.0", "::", ""}


def state_path(settings: Settings) -> Path:
    return settings.storage.data_dir / STATE_FILE


def write_state(settings: Settings, workers: list[int]) -> None:
    node = settings.node
    state = {
        "pid": os.getpid(),
        "workers": workers,
        "host": node.host,
        "port": node.port,
        "ae_title": node.ae_title,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_durably(state_path(settings), json.dumps(state).encode())


def remove_state(settings: Settings) -> None:
    state_path(settings).unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def echo(host: str, port: int, called_ae: str, calling_ae: str = "QSMSTATUS") -> bool:
    """True when the listener accepts an association and answers C-ECHO with success."""
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ECHO_TIMEOUT_S
    ae.add_requested_context(Verification)
    assoc = ae.associate(host, port, ae_title=called_ae)
    if not assoc.is_established:
        return False
    try:
        status = assoc.send_c_echo()
        return getattr(status, "Status", None) == 0x0000
    finally:
        assoc.release()


def listener_status(settings: Settings) -> dict[str, Any]:
    """Running and answering? With TLS on, C-ECHO needs client credentials, so it is skipped."""
    try:
        state = json.loads(state_path(settings).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {"running": False, "echo": False, "healthy": False}
    running = pid_alive(int(state["pid"]))
    answered: bool | None = None
    if running and not settings.node.tls.enabled:
        host = "127.0.0.1" if state["host"] in ANY_ADDRESS else state["host"]
        answered = echo(host, int(state["port"]), state["ae_title"])
    healthy = running and answered is not False
    return {**state, "running": running, "echo": answered, "healthy": healthy}


def service_status(settings: Settings, recent: int = 20) -> dict[str, Any]:
    with open_node_db(settings) as sessions:
        queue = JobQueue(sessions, settings.jobs)
        jobs = [
            {
                "id": job.id,
                "study_uid": job.study_uid,
                "state": job.state,
                "attempts": job.attempts,
                "error": job.last_error,
                "updated_at": job.updated_at.isoformat(timespec="seconds") + "Z",
            }
            for job in queue.recent(recent)
        ]
        outbox = Outbox(sessions, settings)
        dead_letters = [
            {
                "id": row.id,
                "study_uid": row.study_uid,
                "destination": row.destination,
                "output": row.output,
                "attempts": row.attempts,
                "error": row.last_error,
                "updated_at": row.updated_at.isoformat(timespec="seconds") + "Z",
            }
            for row in outbox.dead_letters(recent)
        ]
        counts = queue.counts()
        return {
            "listener": listener_status(settings),
            "compute": {**compute_status(settings), "tasks_in_flight": counts["running"]},
            "job_counts": counts,
            "delivery_counts": outbox.counts(),
            "jobs": jobs,
            "dead_letters": dead_letters,
        }


def compute_status(settings: Settings) -> dict[str, Any]:
    """The engine jobs run on; for Ray its nodes and resources, or why it cannot be reached
    (status must answer even when the cluster is down)."""
    engine = compute_engine(settings)
    try:
        return engine.describe()
    except Exception as exc:  # any failure to reach the cluster is the answer itself
        return {"engine": engine.name, "error": plain_reason(exc)}
