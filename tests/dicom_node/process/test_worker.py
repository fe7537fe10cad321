"""Worker and intake paths that need no reconstruction: real files, real assembly, real DB."""

from __future__ import annotations

import contextlib
import signal
from datetime import timedelta
from pathlib import Path

import pytest
from pydicom import dcmread
from support.node_acquisitions import small_acquisition
from support.node_helpers import write_series

import dicom_node.process.worker
from dicom_node.assemble.study import assemble_study
from dicom_node.db import configured_engine, create_schema, utcnow
from dicom_node.deliver.outbox import Outbox
from dicom_node.process.worker import ShutdownLatch, ShutdownRequested, Worker
from dicom_node.queue.intake import enqueue_study
from dicom_node.queue.jobs import JobQueue
from dicom_node.queue.leasing import WorkState
from dicom_node.receive.catalogue import InstanceHeader, record_instance
from dicom_node.receive.completion import find_complete_series
from dicom_node.synthetic.modules import PatientIdentity
from dicom_node.synthetic.series import write_acquisition_series
from monitor.settings import Settings, load_settings


def _settings(tmp_path: Path, db_url: str) -> Settings:
    storage = {"data_dir": tmp_path / "data", "database_url": db_url}
    return load_settings(None, storage=storage, jobs={"backoff_s": 0.0})


def _worker(settings: Settings) -> Worker:
    sessions = create_schema(configured_engine(settings.storage))
    return Worker(settings, JobQueue(sessions, settings.jobs), Outbox(sessions, settings), "w")


def test_job_whose_files_are_not_an_acquisition_fails_at_once(db_url: str, tmp_path: Path) -> None:
    settings = _settings(tmp_path, db_url)
    worker = _worker(settings)
    files = write_series(tmp_path / "in", 3)
    job = worker.queue.enqueue("not-qsm", "1.2.3", {"paths": [str(p) for p in files]})
    assert worker.run_once()
    failed = worker.queue.get(job.id)
    assert failed is not None and failed.state == WorkState.FAILED and failed.attempts == 1
    assert (failed.last_error or "").startswith("files no longer form this acquisition")
    assert not worker.run_once()


def test_job_with_missing_files_fails_with_a_plain_reason(db_url: str, tmp_path: Path) -> None:
    worker = _worker(_settings(tmp_path, db_url))
    job = worker.queue.enqueue("gone", "1.2.3", {"paths": [str(tmp_path / "nope.dcm")]})
    assert worker.run_once()
    failed = worker.queue.get(job.id)
    assert failed is not None and failed.state == WorkState.FAILED
    assert failed.last_error == "1 instance files of this job are missing"


def test_intake_enqueues_an_assembled_study_once(db_url: str, tmp_path: Path) -> None:

    settings = _settings(tmp_path, db_url)
    worker = _worker(settings)
    identity = PatientIdentity()
    files = write_acquisition_series(small_acquisition(), tmp_path / "in", "siemens", identity)
    with worker.queue.sessions() as session:
        for path in files:
            ds = dcmread(path, stop_before_pixels=True)
            header = InstanceHeader.from_dataset(ds, ds.SOPInstanceUID, ds.SOPClassUID)
            record_instance(session, header, str(path), utcnow())
        find_complete_series(session, utcnow() + timedelta(hours=1), 1.0)
        session.commit()
    (job,) = enqueue_study(worker.queue.sessions, worker.queue, identity.study_uid)
    assert sorted(job.payload["paths"]) == sorted(str(p) for p in files)
    again = enqueue_study(worker.queue.sessions, worker.queue, identity.study_uid)
    assert [j.id for j in again] == [job.id]
    assert worker.queue.counts()[WorkState.PENDING] == 1


def test_a_stop_signal_lost_in_a_callback_still_stops_the_job_at_the_next_stage(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python only prints an exception raised where it cannot propagate (a garbage-collection
    callback, seen with JAX): the latch still stops the job at the next stage, released."""
    latch = ShutdownLatch()
    monkeypatch.setattr(dicom_node.process.worker, "SHUTDOWN", latch)
    stages: list[str] = []

    def signal_lands_in_a_callback(_job_id: int, stage: str) -> None:
        stages.append(stage)
        with contextlib.suppress(ShutdownRequested):  # as Python does inside such a callback
            latch.trip(signal.SIGTERM, None)

    settings = _settings(tmp_path, db_url)
    worker = _worker(settings)
    worker.on_stage = signal_lands_in_a_callback
    identity = PatientIdentity()
    files = write_acquisition_series(small_acquisition(), tmp_path / "in", "siemens", identity)
    (assembled,) = assemble_study(files).acquisitions
    paths = {"paths": [str(p) for p in files]}
    job = worker.queue.enqueue(assembled.idempotency_key, identity.study_uid, paths)

    with pytest.raises(ShutdownRequested):
        worker.run_once()

    assert len(stages) == 1  # stopped at the stage after the lost signal
    released = worker.queue.get(job.id)
    assert released is not None and released.state == WorkState.PENDING
    assert released.attempts == 0
