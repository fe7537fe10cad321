"""Job queue rules on real SQLite and PostgreSQL databases: leases, backoff, idempotency,
attempt limits, concurrent claims."""

from __future__ import annotations

import multiprocessing
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from dicom_node.db import create_schema, make_engine, utcnow
from dicom_node.deliver.outbox import Outbox
from dicom_node.queue.jobs import JobQueue
from dicom_node.queue.leasing import LOST_WORKER_REASON, WorkState, backoff_delay_s
from dicom_node.queue.results import results_for_study
from monitor.settings import JobsSettings, load_settings

SETTINGS = JobsSettings(lease_s=60.0, max_attempts=3, backoff_s=10.0)


def make_queue(db_url: str, settings: JobsSettings = SETTINGS) -> JobQueue:
    return JobQueue(create_schema(make_engine(db_url)), settings)


def test_enqueue_same_key_returns_existing_job(db_url: str) -> None:
    queue = make_queue(db_url)
    first = queue.enqueue("key-1", "1.2.3", {"paths": ["a"]})
    again = queue.enqueue("key-1", "1.2.3", {"paths": ["a", "b"]})
    assert again.id == first.id
    assert again.payload == {"paths": ["a"]}
    assert queue.counts()[WorkState.PENDING] == 1


def test_claim_is_exclusive_until_lease_expires(db_url: str) -> None:
    queue = make_queue(db_url)
    job = queue.enqueue("key-1", "1.2.3", {})
    claimed = queue.claim("worker-a")
    assert claimed is not None and claimed.id == job.id and claimed.attempts == 1
    assert queue.claim("worker-b") is None
    later = utcnow() + timedelta(seconds=SETTINGS.lease_s + 1)
    retaken = queue.claim("worker-b", now=later)
    assert retaken is not None and retaken.lease_owner == "worker-b" and retaken.attempts == 2
    # The crashed first owner can no longer complete: its lease is gone.
    assert not queue.complete(claimed, "worker-a", {"x": 1})
    assert queue.complete(retaken, "worker-b", {"x": 2})
    results = results_for_study(queue.sessions, "1.2.3")
    assert [r.record for r in results] == [{"x": 2}]


def test_heartbeat_keeps_the_lease(db_url: str) -> None:
    queue = make_queue(db_url, JobsSettings(lease_s=5.0))
    queue.enqueue("key-1", "1.2.3", {})
    job = queue.claim("worker-a")
    assert job is not None
    assert queue.heartbeat(job.id, "worker-a")
    assert not queue.heartbeat(job.id, "worker-b")
    renewed = queue.get(job.id)
    assert renewed is not None and renewed.lease_expires_at > job.lease_expires_at


def test_failure_backs_off_exponentially_then_fails(db_url: str) -> None:
    queue = make_queue(db_url)
    queue.enqueue("key-1", "1.2.3", {})
    now = utcnow()
    delays = []
    for attempt in range(1, SETTINGS.max_attempts + 1):
        job = queue.claim("w", now=now)
        assert job is not None and job.attempts == attempt
        state = queue.fail(job.id, "w", f"boom {attempt}", now=now)
        stored = queue.get(job.id)
        assert stored is not None
        if attempt < SETTINGS.max_attempts:
            assert state == WorkState.PENDING
            delays.append((stored.next_attempt_at - now).total_seconds())
            assert queue.claim("w", now=now + timedelta(seconds=delays[-1] - 1)) is None
            now = stored.next_attempt_at
        else:
            assert state == WorkState.FAILED
            assert stored.last_error == f"boom {attempt}"
    assert delays == pytest.approx([10.0, 20.0])
    assert queue.claim("w", now=now + timedelta(days=1)) is None


def test_backoff_is_capped() -> None:
    assert backoff_delay_s(30.0, 1) == 30.0
    assert backoff_delay_s(30.0, 3) == 120.0
    assert backoff_delay_s(30.0, 40) == 6 * 3600.0


def test_worker_lost_on_last_attempt_marks_failed(db_url: str) -> None:
    queue = make_queue(db_url, JobsSettings(lease_s=1.0, max_attempts=1))
    job = queue.enqueue("key-1", "1.2.3", {})
    assert queue.claim("w") is not None
    assert queue.claim("w2", now=utcnow() + timedelta(seconds=5)) is None
    stored = queue.get(job.id)
    assert stored is not None and stored.state == WorkState.FAILED
    assert stored.last_error == LOST_WORKER_REASON


def test_release_gives_the_attempt_back(db_url: str) -> None:
    queue = make_queue(db_url)
    queue.enqueue("key-1", "1.2.3", {})
    job = queue.claim("w")
    assert job is not None and queue.release(job.id, "w")
    again = queue.claim("w2")
    assert again is not None and again.attempts == 1


def test_complete_twice_keeps_one_result(db_url: str) -> None:
    queue = make_queue(db_url)
    queue.enqueue("key-1", "1.2.3", {})
    job = queue.claim("w")
    assert job is not None
    assert queue.complete(job, "w", {"n": 1})
    assert not queue.complete(job, "w", {"n": 2})
    assert len(results_for_study(queue.sessions, "1.2.3")) == 1


def _claim_all(url: str, owner: str, out: multiprocessing.Queue) -> None:
    queue = JobQueue(create_schema(make_engine(url)), SETTINGS)
    won = []
    while (job := queue.claim(owner)) is not None:
        won.append(job.id)
    out.put(won)


def test_concurrent_processes_never_claim_the_same_job(db_url: str) -> None:
    queue = make_queue(db_url)
    for i in range(30):
        queue.enqueue(f"key-{i}", "1.2.3", {})
    ctx = multiprocessing.get_context("spawn")  # no fork: JAX threads may be live in pytest
    out = ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(db_url, f"w{i}", out)) for i in range(3)]
    for p in procs:
        p.start()
    claimed = [job_id for _ in procs for job_id in out.get(timeout=60)]
    for p in procs:
        p.join(timeout=30)
    assert sorted(claimed) == sorted(set(claimed))
    assert len(claimed) == 30


def test_permanent_failure_skips_remaining_attempts(db_url: str) -> None:
    queue = make_queue(db_url)
    queue.enqueue("key-1", "1.2.3", {})
    job = queue.claim("w")
    assert job is not None
    assert queue.fail(job.id, "w", "not a QSM acquisition", permanent=True) == WorkState.FAILED
    assert queue.claim("w", now=utcnow() + timedelta(days=1)) is None


def test_deliveries_commit_only_with_the_result(db_url: str, tmp_path: Path) -> None:
    settings = load_settings(
        None,
        destinations=[
            {"name": "archive", "kind": "folder", "path": tmp_path / "a", "outputs": ["chi_ppm"]}
        ],
    )
    queue = make_queue(db_url)
    outbox = Outbox(queue.sessions, settings)
    output = tmp_path / "chi.nii.gz"
    output.write_bytes(b"map")
    queue.enqueue("key-1", "1.2.3", {})
    lost = queue.claim("worker-a")
    retaken = queue.claim("worker-b", now=utcnow() + timedelta(seconds=SETTINGS.lease_s + 1))
    assert lost is not None and retaken is not None

    def deliveries(session: Session) -> int:
        return outbox.add(session, "key-1", "1.2.3", {"chi_ppm": output})

    assert not queue.complete(lost, "worker-a", {}, also=deliveries)
    assert outbox.rows() == []
    assert queue.complete(retaken, "worker-b", {}, also=deliveries)
    assert [row.destination for row in outbox.rows()] == ["archive"]
