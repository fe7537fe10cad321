"""Jobs whose heavy stage runs on a real two-node Ray cluster, with PostgreSQL as the record.

The task is pinned to the second node by a custom resource and reports the node it ran on.
Killing the Ray worker process that runs the task fails the attempt; the job is retried under
the queue's lease rules and exactly one result is stored.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.delivery_helpers import small_study
from support.ray_cluster import (
    ISOLATED_ENV,
    OTHER_NODE,
    RayCluster,
    descendants,
    running_ray_cluster,
)

from dicom_node.assemble.study import assemble_study
from dicom_node.db import configured_engine, create_schema
from dicom_node.deliver.outbox import Outbox
from dicom_node.process.compute import RayEngine
from dicom_node.process.worker import Worker
from dicom_node.queue.jobs import JobQueue
from dicom_node.queue.leasing import WorkState
from dicom_node.queue.results import results_for_study
from dicom_node.synthetic.modules import PatientIdentity
from monitor.settings import Settings, load_settings

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("db_url", ["postgresql"], indirect=True),
    pytest.mark.skipif(
        os.environ.get(ISOLATED_ENV) != "1",
        reason="run inside a loopback-only network namespace by test_ray_isolated.py",
    ),
]


@pytest.fixture(scope="module")
def cluster() -> Iterator[RayCluster]:
    with running_ray_cluster() as running:
        yield running


def _worker(tmp_path: Path, db_url: str, cluster: RayCluster, labels: Path) -> Worker:
    """A node whose jobs run on the other Ray node; the label file stays on this node."""
    settings: Settings = load_settings(
        None,
        storage={"data_dir": tmp_path / "data", "database_url": db_url},
        jobs={"backoff_s": 0.0},
        recon={"tv_iterations": 5},
        segmentation={"method": "external", "external_path": labels},
        compute={"engine": "ray", "address": cluster.address, "resources": {OTHER_NODE: 1}},
    )
    sessions = create_schema(configured_engine(settings.storage))
    return Worker(settings, JobQueue(sessions, settings.jobs), Outbox(sessions, settings), "n1")


def _node(tmp_path: Path, db_url: str, cluster: RayCluster) -> tuple[Worker, str]:
    """The node with one study's job queued (`small_study`: a 64x64x48 phantom)."""
    identity = PatientIdentity()
    files, labels = small_study(tmp_path / "in", identity)
    worker = _worker(tmp_path, db_url, cluster, labels)
    (assembled,) = assemble_study(files).acquisitions
    paths = {"paths": [str(p) for p in files]}
    worker.queue.enqueue(assembled.idempotency_key, identity.study_uid, paths)
    return worker, identity.study_uid


def _other_node_id() -> str:
    import ray

    (node,) = [n for n in ray.nodes() if n["Alive"] and OTHER_NODE in n["Resources"]]
    return str(node["NodeID"])


def test_job_runs_on_the_pinned_ray_node_and_is_stored_by_the_node(
    cluster: RayCluster, db_url: str, tmp_path: Path
) -> None:
    worker, study_uid = _node(tmp_path, db_url, cluster)
    assert isinstance(worker.engine, RayEngine)

    assert worker.run_once()

    (job,) = worker.queue.recent()
    assert job.last_error is None
    assert job.state == WorkState.DONE
    (result,) = results_for_study(worker.queue.sessions, study_uid)
    assert result.record["error"] is None
    assert result.record["qc"]["ran_on"] == _other_node_id()
    assert Path(result.record["outputs"]["chi_ppm"]).is_file()  # written by the node
    status = worker.engine.describe()
    assert status["nodes"] == 2 and status["cpus"] == 2.0


def _kill_task_worker(cluster: RayCluster, timeout_s: float = 120.0) -> int:
    """Kill -9 the Ray worker process running the task on the other node, once it runs."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for pid in descendants(cluster.other.pid):
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if title.startswith(b"ray::qsm_analyse"):  # the process title while it runs
                os.kill(pid, signal.SIGKILL)
                return pid
        time.sleep(0.1)
    raise TimeoutError("the task never started on the other node")


def test_worker_killed_mid_task_is_retried_and_stored_once(
    cluster: RayCluster, db_url: str, tmp_path: Path
) -> None:
    worker, study_uid = _node(tmp_path, db_url, cluster)
    killed: list[int] = []
    killer = threading.Thread(target=lambda: killed.append(_kill_task_worker(cluster)))
    killer.start()

    assert worker.run_once()  # the attempt whose Ray worker died
    killer.join()
    (job,) = worker.queue.recent()
    assert killed and job.state == WorkState.PENDING and job.attempts == 1
    assert "Worker" in (job.last_error or "") or "died" in (job.last_error or "")
    assert results_for_study(worker.queue.sessions, study_uid) == []

    assert worker.run_once()  # the retry, under the queue's rules

    done = worker.queue.get(job.id)
    assert done is not None and done.state == WorkState.DONE and done.attempts == 2
    (result,) = results_for_study(worker.queue.sessions, study_uid)
    assert result.record["qc"]["ran_on"] == _other_node_id()
    assert not worker.run_once()


def test_backfill_with_two_tasks_in_flight_stores_each_study_once(
    cluster: RayCluster, db_url: str, tmp_path: Path
) -> None:
    """Two lanes, their outputs written by the node's emitter pool, one result per study."""
    from dicom_node.process.backfill import backfill

    identities = [PatientIdentity(patient_id=f"RAY-{i}", accession_number=f"R{i}") for i in (1, 2)]
    labels = [small_study(tmp_path / "archive" / p.patient_id, p)[1] for p in identities][0]
    settings = load_settings(
        None,
        storage={"data_dir": tmp_path / "data", "database_url": db_url},
        jobs={"backoff_s": 0.0},
        recon={"tv_iterations": 5},
        segmentation={"method": "external", "external_path": labels},
        compute={"engine": "ray", "address": cluster.address, "max_in_flight": 2},
    )
    lines: list[str] = []

    summary = backfill([tmp_path / "archive"], settings, report=lines.append)

    assert (summary.found, summary.processed, summary.failed) == (2, 2, 0)
    assert any(line.startswith("[2/2]") for line in lines)
    sessions = create_schema(configured_engine(settings.storage))
    for identity in identities:
        (result,) = results_for_study(sessions, identity.study_uid)
        assert result.record["error"] is None
        sr = Path(result.record["outputs"]["sr"])
        assert sr.is_file() and sr.is_relative_to(tmp_path / "data")
