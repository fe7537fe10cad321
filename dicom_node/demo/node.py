"""The node's real parts composed in one process for `qsm-monitor demo`.

`qsm-monitor serve` runs workers in separate processes and reports progress only to its log.
The demo wants to *show* each stage as it happens, so it drives the same objects from its own
thread instead: the real listener (C-STORE over a real association, spool, catalogue,
completion), the real intake and job queue, one `Worker` whose stage callback feeds the
display, and the real outbox. Nothing here is a demo-only shortcut of the pipeline.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.orm import sessionmaker

from dicom_node.db import configured_engine, create_schema
from dicom_node.deliver.outbox import Outbox
from dicom_node.deliver.sender import DeliveryError, send_dicom
from dicom_node.errors import NodeError
from dicom_node.process.worker import StageCallback, Worker, lease_owner_name
from dicom_node.queue.intake import enqueue_study
from dicom_node.queue.jobs import JobQueue
from dicom_node.queue.leasing import WorkState
from dicom_node.queue.results import results_for_study
from dicom_node.receive.listener import Listener
from monitor.record import ProcessingRecord
from monitor.settings import DestinationSettings, Settings

SCANNER_AE = "DEMOSCANNER"
"""Calling AE title of the simulated scanner that pushes the series."""

PUSH_ATTEMPTS = 3
"""Associations the simulated scanner tries before giving up, as a real scanner's send queue
retries: a loaded disk can hold one C-STORE past the DIMSE timeout (every instance is
fsync'd), and the listener accepts an identical copy of an instance it already keeps."""


class DemoTimeoutError(NodeError, RuntimeError):
    """A study did not finish within the allowed time (the demo then fails loudly)."""


def free_loopback_port() -> int:
    """A port the OS says is free now (tiny race window, acceptable for a local demo)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class DemoNode:
    """Listener + intake + one in-process worker + outbox over one database."""

    def __init__(self, settings: Settings, on_stage: StageCallback) -> None:
        self.settings = settings
        self.engine = configured_engine(settings.storage)
        self.sessions: sessionmaker = create_schema(self.engine)
        self.queue = JobQueue(self.sessions, settings.jobs)
        self.outbox = Outbox(self.sessions, settings)
        self.listener = Listener(settings, self._on_series_complete, sessions=self.sessions)
        self.worker = Worker(
            settings, self.queue, self.outbox, lease_owner_name("demo-worker"), on_stage=on_stage
        )

    def _on_series_complete(self, study_uid: str, _series_uid: str) -> None:
        enqueue_study(self.sessions, self.queue, study_uid)

    def __enter__(self) -> DemoNode:
        self.listener.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.listener.stop()
        self.engine.dispose()

    def push(self, files: list[Path], on_retry: Callable[[int], None] = lambda _n: None) -> None:
        """Send the files to our own listener over one association, as a scanner would, and
        send them again on a new association if that one fails (`on_retry` gets the attempt
        number about to start); the last attempt's error propagates."""
        node = self.settings.node
        listener = DestinationSettings(
            name="demo-listener",
            kind="dicom",
            host=node.host,
            port=node.port,
            ae_title=node.ae_title,
        )
        for attempt in range(1, PUSH_ATTEMPTS + 1):
            try:
                send_dicom(files, listener, SCANNER_AE, node.network_timeout_s)
                return
            except DeliveryError:
                if attempt == PUSH_ATTEMPTS:
                    raise
                on_retry(attempt + 1)

    def process_study(
        self, study_uid: str, timeout_s: float, waiting: Callable[[], None]
    ) -> list[ProcessingRecord]:
        """Run jobs until this study has a result (or its job failed); returns its records.

        `waiting` is called while the series are still settling, so the display stays alive.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            worked = self.worker.run_once()
            records = [
                row.processing_record() for row in results_for_study(self.sessions, study_uid)
            ]
            if records:
                return records
            failed = [
                job
                for job in self.queue.recent(50)
                if job.study_uid == study_uid and job.state == WorkState.FAILED
            ]
            if failed:
                job = failed[0]
                return [
                    ProcessingRecord(
                        idempotency_key=job.idempotency_key,
                        patient_id="",
                        study_uid=study_uid,
                        study_date=None,
                        error=job.last_error,
                    )
                ]
            if not worked:
                waiting()
                time.sleep(self.settings.jobs.poll_interval_s)
        raise DemoTimeoutError(f"no result within {timeout_s:.0f} s")

    def deliver_all(self) -> dict[str, int]:
        """Attempt every due delivery now; returns the outbox counts per state."""
        owner = lease_owner_name("demo-deliverer")
        while self.outbox.deliver_next(owner):
            pass
        return self.outbox.counts()
