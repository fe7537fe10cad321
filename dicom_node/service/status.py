"""Service state for `qsm-monitor status` and container health checks.

`serve` writes a small state file into the data directory; `status` reads it, checks that the
process lives and that the DICOM port answers C-ECHO (the real test of "can scanners send"),
and adds queue and outbox counts from the database.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from sqlalchemy.orm import sessionmaker

from dicom_node.db import open_node_db
from dicom_node.deliver.outbox import Outbox
from dicom_node.files import write_durably
from dicom_node.priors.requests import PriorFetches
from dicom_node.process.compute import compute_engine
from dicom_node.process.pipeline import plain_reason
from dicom_node.queue.jobs import JobQueue
from dicom_node.queue.not_processed import not_processed
from dicom_node.receive.access import HEALTH_CHECK_AE
from dicom_node.receive.completion import stuck_series
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


def echo(host: str, port: int, called_ae: str, calling_ae: str = HEALTH_CHECK_AE) -> bool:
    """True when the listener accepts an association and answers C-ECHO with success."""
    return echo_problem(host, port, called_ae, calling_ae) is None


def echo_problem(
    host: str, port: int, called_ae: str, calling_ae: str = HEALTH_CHECK_AE
) -> str | None:
    """Why C-ECHO failed, in one line an operator can act on; None when it succeeded."""
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ECHO_TIMEOUT_S
    ae.add_requested_context(Verification)
    assoc = ae.associate(host, port, ae_title=called_ae)
    if assoc.is_rejected:
        return f"{host}:{port} rejected the association from {calling_ae} (called {called_ae})"
    if not assoc.is_established:
        return f"no DICOM answer from {host}:{port} within {ECHO_TIMEOUT_S:g} s"
    try:
        status = getattr(assoc.send_c_echo(), "Status", None)
    finally:
        assoc.release()
    if status != 0x0000:
        return "no C-ECHO response" if status is None else f"C-ECHO status 0x{status:04X}"
    return None


def listener_status(settings: Settings) -> dict[str, Any]:
    """Running and answering? With TLS on, C-ECHO needs client credentials, so it is skipped."""
    try:
        state = json.loads(state_path(settings).read_text())
    except FileNotFoundError:
        problem = "the service is not running (it has not been started with this data folder)"
        return {"running": False, "echo": False, "healthy": False, "problem": problem}
    except json.JSONDecodeError:
        problem = "the service is not running (its state file is unreadable)"
        return {"running": False, "echo": False, "healthy": False, "problem": problem}
    running = pid_alive(int(state["pid"]))
    answered: bool | None = None
    problem = None if running else "the service is not running (no live process)"
    if running and not settings.node.tls.enabled:
        host = "127.0.0.1" if state["host"] in ANY_ADDRESS else state["host"]
        problem = echo_problem(host, int(state["port"]), state["ae_title"])
        answered = problem is None
    healthy = running and answered is not False
    return {**state, "running": running, "echo": answered, "healthy": healthy, "problem": problem}


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
        queue_counts, delivery_counts = queue.counts(), outbox.counts()
        destinations = outbox.destination_summary()
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
        with sessions() as session:
            stuck = [key.series_uid for key in stuck_series(session)]
        priors = prior_fetch_status(sessions, settings, recent)
        unused = [
            {
                "study_uid": row.study_uid,
                "series_uid": row.series_uid,
                "reason": row.reason,
                "noted_at": row.noted_at.isoformat(timespec="seconds") + "Z",
            }
            for row in not_processed(sessions, recent)
        ]
    listener = listener_status(settings)
    disk = disk_status(settings)
    compute = {**compute_status(settings), "tasks_in_flight": queue_counts["running"]}
    problems = [
        *([listener["problem"]] if listener.get("problem") else []),
        *([f"{len(stuck)} series could not be handed over (state stuck)"] if stuck else []),
        *([disk["problem"]] if disk["problem"] else []),
    ]
    return {
        "healthy": listener["healthy"] and not stuck and not disk["problem"],
        "problems": problems,
        "listener": listener,
        "compute": compute,
        "disk": disk,
        "stuck_series": stuck,
        "job_counts": queue_counts,
        "delivery_counts": delivery_counts,
        "destinations": destinations,
        "jobs": jobs,
        "dead_letters": dead_letters,
        "not_processed_series": unused,
        **priors,
    }


def prior_fetch_status(sessions: sessionmaker, settings: Settings, recent: int) -> dict[str, Any]:
    """Prior fetches by state and those whose last attempt failed (retrying or given up),
    named by the study that asked for them, never by the patient."""
    fetches = PriorFetches(sessions, settings.priors)
    problems = [
        {
            "id": row.id,
            "state": row.state,
            "study_uid": row.trigger_study_uid,
            "attempts": row.attempts,
            "error": row.last_error,
            "next_attempt_at": row.next_attempt_at.isoformat(timespec="seconds") + "Z",
        }
        for row in fetches.unfinished_problems(recent)
    ]
    return {"prior_fetch_counts": fetches.counts(), "prior_fetch_problems": problems}


def disk_status(settings: Settings) -> dict[str, Any]:
    """Free space where the spool and outputs are written; below the configured floor the
    node would start refusing instances (0xA700), so status says so first."""
    folder = settings.storage.data_dir
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    free_mb = shutil.disk_usage(folder).free / 1e6
    floor = settings.storage.min_free_mb
    problem = (
        f"disk nearly full: {free_mb:.0f} MB free, below {floor:.0f} MB"
        if free_mb < floor
        else None
    )
    return {"free_mb": round(free_mb), "min_free_mb": floor, "problem": problem}


def compute_status(settings: Settings) -> dict[str, Any]:
    """The engine jobs run on; for Ray its nodes and resources, or why it cannot be reached
    (status must answer even when the cluster is down)."""
    engine = compute_engine(settings)
    try:
        return engine.describe()
    except Exception as exc:  # any failure to reach the cluster is the answer itself
        return {"engine": engine.name, "error": plain_reason(exc)}
