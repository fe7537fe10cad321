"""`qsm-monitor serve`: listener + intake in this process, N worker processes, one deliverer.

The main thread only supervises: it restarts a worker process that died (a crash must not
shrink the pool for good) and, on stop, shuts everything down in order: stop accepting,
let workers hand back their jobs, stop delivering, remove the state file.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Callable
from multiprocessing.process import BaseProcess

from sqlalchemy.orm import sessionmaker

from dicom_node.db import configured_engine, create_schema
from dicom_node.deliver.outbox import Outbox
from dicom_node.logs import log_event
from dicom_node.priors.runner import PriorFetcher
from dicom_node.process.worker import lease_owner_name, worker_process_main
from dicom_node.queue.intake import enqueue_study
from dicom_node.queue.jobs import JobQueue
from dicom_node.receive.listener import Listener
from dicom_node.service.startup import startup_summary
from dicom_node.service.status import remove_state, write_state
from monitor.settings import Settings

LOGGER = logging.getLogger(__name__)

WORKER_STOP_TIMEOUT_S = 50.0
"""Workers get this long to hand back their job after SIGTERM before they are killed."""
SUPERVISE_INTERVAL_S = 1.0


class Service:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = configured_engine(settings.storage)
        self.sessions: sessionmaker = create_schema(self.engine)
        self.queue = JobQueue(self.sessions, settings.jobs)
        self.outbox = Outbox(self.sessions, settings)
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[BaseProcess] = []

    def on_series_complete(self, study_uid: str, _series_uid: str) -> None:
        enqueue_study(self.sessions, self.queue, study_uid)

    def run(self, stop: threading.Event, announce: Callable[[str], None] | None = None) -> None:
        """Serve until `stop` is set (the CLI sets it on SIGTERM/SIGINT); `announce` gets the
        one-line start-up summary once the listener accepts associations."""
        listener = Listener(self.settings, self.on_series_complete, sessions=self.sessions)
        listener.start()
        if announce is not None:
            announce(startup_summary(self.settings))
        self._workers = [self._spawn(i) for i in range(self.settings.jobs.workers)]
        deliverer = threading.Thread(target=self._deliver, args=(stop,), name="deliverer")
        deliverer.start()
        fetcher = self._start_prior_fetcher(stop)
        write_state(self.settings, [p.pid or 0 for p in self._workers])
        log_event(LOGGER, "service_started", workers=len(self._workers))
        try:
            while not stop.wait(SUPERVISE_INTERVAL_S):
                self._restart_dead_workers()
        finally:
            listener.stop()
            self._stop_workers()
            stop.set()
            deliverer.join()
            if fetcher is not None:
                fetcher.join()
            remove_state(self.settings)
            self.engine.dispose()
            log_event(LOGGER, "service_stopped")

    def _start_prior_fetcher(self, stop: threading.Event) -> threading.Thread | None:
        """Prior fetches run in their own thread: they wait on the PACS, and never on (or
        hold up) a report."""
        if not self.settings.priors.enabled:
            return None
        fetcher = PriorFetcher(self.settings, self.sessions, lease_owner_name("priors"))
        thread = threading.Thread(target=fetcher.run, args=(stop,), name="prior-fetcher")
        thread.start()
        return thread

    def _spawn(self, index: int) -> BaseProcess:
        process = self._context.Process(
            target=worker_process_main,
            args=(self.settings, index, os.getpid()),
            name=f"qsm-worker-{index}",
        )
        process.start()
        return process

    def _restart_dead_workers(self) -> None:
        for index, process in enumerate(self._workers):
            if not process.is_alive():
                log_event(
                    LOGGER,
                    "worker_restarted",
                    logging.WARNING,
                    worker=index,
                    exit_code=process.exitcode,
                )
                self._workers[index] = self._spawn(index)
                write_state(self.settings, [p.pid or 0 for p in self._workers])

    def _stop_workers(self) -> None:
        for process in self._workers:
            if process.is_alive():
                process.terminate()
        for process in self._workers:
            process.join(WORKER_STOP_TIMEOUT_S)
            if process.is_alive():
                process.kill()
                process.join()

    def _deliver(self, stop: threading.Event) -> None:
        """Deliveries run in a thread: they wait on the network, not the CPU."""
        owner = lease_owner_name("deliverer")
        idle_s = self.settings.outbox.poll_interval_s
        while not stop.is_set():
            try:
                busy = self.outbox.deliver_next(owner)
            except Exception:  # the database may be busy; never end delivery for good
                LOGGER.exception("delivery_loop_failed")
                busy = False
            if not busy:
                stop.wait(idle_s)
