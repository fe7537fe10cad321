"""Worker processes: claim a job, run the pipeline, store its result exactly once.

Workers are separate processes (reconstruction is CPU-heavy and JAX holds the GIL in long
calls), started with ``spawn`` because the service process already runs listener threads.
A worker whose parent disappears (the service was killed) exits at once instead of finishing
a job nobody will deliver: its lease then expires and the restarted service takes the job.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from dicom_node.assemble.seg_input import split_segmentation
from dicom_node.db import configured_engine, create_schema
from dicom_node.deliver.outbox import Outbox
from dicom_node.logs import configure_logging, log_event, uid_hash
from dicom_node.priors.trigger import request_priors
from dicom_node.process.amend import amend_acquisition, due_amendments
from dicom_node.process.compute import ComputeEngine, compute_engine
from dicom_node.process.node_work import InlineNodeWork, NodeWork
from dicom_node.process.pipeline import (
    ProcessingResult,
    Progress,
    plain_reason,
    process_acquisition,
)
from dicom_node.queue.jobs import Job, JobQueue
from dicom_node.release.reviews import ReleaseGate
from monitor.settings import Settings
from monitor.types import InvalidAcquisitionError

LOGGER = logging.getLogger(__name__)

ORPHAN_EXIT_CODE = 70


StageCallback = Callable[[int, str], None]


class ShutdownRequested(BaseException):
    """Raised in the worker's main thread by SIGTERM/SIGINT; not an `Exception`, so no
    `except Exception` inside the pipeline can swallow it."""


class ShutdownLatch:
    """Remembers a SIGTERM/SIGINT; `check` raises it at the next safe point.

    An exception raised by a signal handler is lost when the signal lands inside a callback
    whose exceptions Python only prints (seen here: JAX's garbage-collection callback during
    a reconstruction, after which the job ran to the end). So the worker checks the latch
    at every pipeline stage and between jobs, and the stop takes effect there at the latest.
    """

    def __init__(self) -> None:
        self.signal_name: str | None = None

    def trip(self, signum: int, _frame: FrameType | None) -> None:
        """Only remember the signal: raising from the handler lands inside whatever runs,
        and inside JAX's native code (backend start-up, compilation) that crashed the worker
        with a segfault before it could hand its job back. The stop takes effect at the
        next stage or between jobs (`check`), within the service's stop timeout."""
        self.signal_name = signal.Signals(signum).name

    def check(self) -> None:
        if self.signal_name is not None:
            raise ShutdownRequested(self.signal_name)


SHUTDOWN = ShutdownLatch()
"""The worker process's latch (signal handlers are process-wide)."""


def run_job(
    job: Job,
    settings: Settings,
    sessions: sessionmaker,
    progress: Progress | None = None,
    engine: ComputeEngine | None = None,
    node_work: NodeWork | None = None,
) -> ProcessingResult:
    """Re-assemble the job's files and process the acquisition that carries the job's key;
    an amendment job re-emits a reported acquisition's assessment instead."""
    if "amend" in job.payload:
        return amend_acquisition(str(job.payload["amend"]), settings, sessions, progress)
    paths = [Path(p) for p in job.payload["paths"]]
    missing = sum(not p.exists() for p in paths)
    if missing:
        raise InvalidAcquisitionError(f"{missing} instance files of this job are missing")
    images, settings = settings_for_job(settings, paths)
    node_work = node_work or InlineNodeWork()
    report = node_work.assemble(images)
    for assembled in report.acquisitions:
        if assembled.idempotency_key == job.idempotency_key:
            return process_acquisition(assembled, settings, progress, engine, node_work)
    reasons = "; ".join(rejection.reason for rejection in report.rejected)
    raise InvalidAcquisitionError(f"files no longer form this acquisition: {reasons or 'none'}")


def settings_for_job(settings: Settings, paths: list[Path]) -> tuple[list[Path], Settings]:
    """The job's image files, and the settings to process them with: a DICOM SEG that came
    with the study replaces the atlas unless the site switched received SEGs off."""
    images, segmentation = split_segmentation(paths)
    if segmentation is not None and settings.segmentation.use_received_segmentation:
        settings = settings.with_external_segmentation(segmentation)
    return images, settings


ORPHAN_CHECK_S = 1.0
"""How often a running job checks that the service that started it is still alive."""


class LeaseKeeper:
    """Heartbeat thread for the job in hand; also the orphan check while a job runs."""

    def __init__(self, queue: JobQueue, job_id: int, owner: str, parent_pid: int) -> None:
        self._queue, self._job_id, self._owner = queue, job_id, owner
        self._parent_pid = parent_pid
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        """Check for orphaning every second (a dead service's worker must stop within
        seconds, not compute on for a third of the lease), heartbeat every third lease."""
        beat_s = self._queue.settings.lease_s / 3
        next_beat = time.monotonic() + beat_s
        while not self._stop.wait(min(ORPHAN_CHECK_S, beat_s)):
            exit_if_orphaned(self._parent_pid)
            if time.monotonic() < next_beat:
                continue
            next_beat = time.monotonic() + beat_s
            try:
                if not self._queue.heartbeat(self._job_id, self._owner):
                    log_event(LOGGER, "lease_lost", logging.WARNING, job=self._job_id)
            except Exception:  # a busy database now must not kill the job; retry next beat
                LOGGER.exception("heartbeat_failed")


def exit_if_orphaned(parent_pid: int) -> None:
    """The service died without stopping us (kill -9, OOM): stop at once, lease will expire."""
    if parent_pid and os.getppid() != parent_pid:
        os._exit(ORPHAN_EXIT_CODE)


class Worker:
    """One claim-process-complete loop; `run_once` is the unit tests drive directly."""

    def __init__(  # noqa: PLR0913 - collaborators passed explicitly, no globals
        self,
        settings: Settings,
        queue: JobQueue,
        outbox: Outbox,
        owner: str,
        parent_pid: int = 0,
        on_stage: StageCallback | None = None,
        node_work: NodeWork | None = None,
    ) -> None:
        self.settings, self.queue, self.outbox, self.owner = settings, queue, outbox, owner
        self.release = ReleaseGate(queue.sessions, settings, outbox)
        """Deliveries go to the outbox at once, or wait for a reviewer ([release])."""
        self.parent_pid = parent_pid
        """Non-zero in a service worker process: exit when that parent is gone."""
        self.engine = compute_engine(settings)
        """Where the heavy stage runs ([compute] engine); the job stays with this worker."""
        self.node_work = node_work or InlineNodeWork()
        """Where assembly and outputs run (a process pool when several jobs are in flight)."""
        self.on_stage = on_stage or _log_stage
        """Told (job id, stage) as the pipeline advances: logged by the service, shown by the
        demo, so a long reconstruction is never a silent wait."""

    def run_once(self) -> bool:
        """Process one due job; False when none was due."""
        job = self.queue.claim(self.owner)
        if job is None:
            return False
        fields = {"job": job.id, "acquisition": uid_hash(job.idempotency_key)}
        log_event(LOGGER, "job_started", attempt=job.attempts, **fields)
        try:
            with LeaseKeeper(self.queue, job.id, self.owner, self.parent_pid):
                result = run_job(
                    job,
                    self.settings,
                    self.queue.sessions,
                    lambda s: self._stage(job.id, s),
                    self.engine,
                    self.node_work,
                )
                amendments = due_amendments(
                    self.queue.sessions, self.settings, result.reassessed_study_uids
                )
        except ShutdownRequested:
            self.queue.release(job.id, self.owner)
            log_event(LOGGER, "job_released", **fields)
            raise
        except Exception as exc:
            permanent = isinstance(exc, InvalidAcquisitionError)
            state = self.queue.fail(job.id, self.owner, plain_reason(exc), permanent=permanent)
            log_event(
                LOGGER,
                "job_failed",
                logging.WARNING,
                state=state,
                error=type(exc).__name__,
                **fields,
            )
            return True
        done = self.queue.complete(
            job,
            self.owner,
            result.to_record().to_json(),
            also=lambda session: self._queue_results(session, job, result, amendments),
        )
        log_event(LOGGER, "job_done" if done else "job_lease_lost_before_done", **fields)
        return True

    def _queue_results(
        self,
        session: Session,
        job: Job,
        result: ProcessingResult,
        amendments: list[tuple[str, str, dict[str, Any]]],
    ) -> None:
        """Deliveries of the result (or its review), the amendments it caused and a prior
        fetch it calls for, in the completing transaction: a crash can lose none of them."""
        self.release.submit(session, job.idempotency_key, job.study_uid, result.outputs)
        for key, study_uid, payload in amendments:
            self.queue.add(session, key, study_uid, payload)
        request_priors(session, self.settings, result.study_uid, result.history)

    def _stage(self, job_id: int, stage: str) -> None:
        SHUTDOWN.check()
        self.on_stage(job_id, stage)

    def run_forever(self) -> None:
        idle_s = self.settings.jobs.poll_interval_s
        while True:
            SHUTDOWN.check()
            exit_if_orphaned(self.parent_pid)
            if not self.run_once():
                time.sleep(idle_s)


def _log_stage(job_id: int, stage: str) -> None:
    log_event(LOGGER, "job_stage", job=job_id, stage=stage)


def lease_owner_name(role: str) -> str:
    """Lease owners say where work runs (host, process, role), for `status` and debugging."""
    return f"{socket.gethostname()}:{os.getpid()}:{role}"


def worker_process_main(settings: Settings, index: int, parent_pid: int) -> None:
    """Entry point of a spawned worker process; returns only on SIGTERM/SIGINT."""
    configure_logging()
    logging.getLogger("jax").setLevel(logging.WARNING)  # backend probing is not an event
    signal.signal(signal.SIGTERM, SHUTDOWN.trip)
    signal.signal(signal.SIGINT, SHUTDOWN.trip)
    engine = configured_engine(settings.storage)
    sessions = create_schema(engine)
    queue, outbox = JobQueue(sessions, settings.jobs), Outbox(sessions, settings)
    worker = Worker(settings, queue, outbox, lease_owner_name(f"worker{index}"), parent_pid)
    try:
        worker.run_forever()
    except ShutdownRequested:
        log_event(LOGGER, "worker_stopped", worker=index)
    finally:
        engine.dispose()
