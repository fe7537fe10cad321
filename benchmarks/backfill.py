"""Backfill throughput: the local engine against Ray with 1 and 2 worker processes.

Run: ``.venv/bin/python benchmarks/backfill.py [--studies 8]`` (needs the ``ray`` and
``postgresql`` extras and the PostgreSQL server programs; it starts its own throw-away
PostgreSQL cluster and two-node Ray cluster, like the tests, and stops them).

An archive of small studies (4 patients x 2 visits of the 64x64x48 test phantom, external
labels so no atlas registration, 5 TV iterations) goes through `qsm-monitor backfill`'s
function on SQLite and on PostgreSQL, each configuration with a fresh data directory and
database:

- ``local``: the embedded engine, one job at a time in this process (the baseline);
- ``ray x1``: Ray, ``max_in_flight = 1`` (one Ray worker process busy at a time);
- ``ray x2``: Ray, ``max_in_flight = 2`` (two worker processes, one per Ray node's CPU).

Each row prints studies per minute, the ratio to the local baseline of the same run and
database and, for ``ray x2``, the ratio to ``ray x1`` (1 -> 2 worker processes), and checks
that every study has exactly one result (nothing lost, nothing twice). A warm-up backfill of
two studies through ``local`` and ``ray x2`` runs first and is not timed, so every timed row
runs warm (JAX imported and the programs compiled in this process and in both Ray worker
processes, which persist for the driver); the machine is shared, so the load average is
printed too.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

# The packages first, also for the lane processes (they inherit this path): tests/monitor
# would shadow them.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.append(str(Path(__file__).resolve().parents[1] / "tests"))  # the phantom studies
from sqlalchemy import func, select  # noqa: E402
from support.delivery_helpers import segmentation_config, small_study  # noqa: E402
from support.postgres import running_postgres  # noqa: E402
from support.ray_cluster import running_ray_cluster  # noqa: E402

from dicom_node.db import open_node_db  # noqa: E402
from dicom_node.process.amend import AMEND_PREFIX  # noqa: E402
from dicom_node.process.backfill import backfill  # noqa: E402
from dicom_node.queue.results import Result  # noqa: E402
from dicom_node.synthetic.modules import PatientIdentity  # noqa: E402
from monitor.settings import Settings, load_settings  # noqa: E402


def write_archive(root: Path, studies: int) -> Path:
    """`studies` studies, two visits per patient; returns the label file they share."""
    labels = root / "labels.nii.gz"
    for index in range(studies):
        identity = PatientIdentity(
            patient_id=f"BENCH-{index // 2}",
            study_date=f"202{index % 2 + 4}0301",
            accession_number=f"BENCH{index}",
        )
        _, labels = small_study(root / f"study{index}", identity)
    return labels


def settings_for(work: Path, database_url: str, labels: Path, compute: dict) -> Settings:
    config = work / "qsm-monitor.toml"
    config.write_text(
        f'[storage]\ndata_dir = "{work / "data"}"\ndatabase_url = "{database_url}"\n'
        f"[recon]\ntv_iterations = 5\n{segmentation_config(labels)}"
    )
    return load_settings(config, compute=compute)


def run(archive: Path, settings: Settings) -> tuple[float, int, int, int]:
    """Seconds, acquisition results stored, distinct acquisitions among them, amendments
    (a visit finished before an earlier one of its patient is amended when that lands)."""
    started = time.monotonic()
    summary = backfill([archive], settings, report=lambda _line: None)
    seconds = time.monotonic() - started
    acquisitions = ~Result.idempotency_key.startswith(AMEND_PREFIX)
    with open_node_db(settings) as sessions, sessions() as session:
        rows = session.scalar(select(func.count(Result.id)).where(acquisitions))
        keys = session.scalar(
            select(func.count(func.distinct(Result.idempotency_key))).where(acquisitions)
        )
        amended = session.scalar(select(func.count(Result.id)).where(~acquisitions))
    assert summary.failed == 0, summary
    return seconds, int(rows or 0), int(keys or 0), int(amended or 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=8)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="qsm-backfill-bench-"))
    archive = root / "archive"
    labels = write_archive(archive, args.studies)
    print(f"{args.studies} studies, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    with running_postgres() as postgres, running_ray_cluster() as cluster:
        ray = {"engine": "ray", "address": cluster.address}
        engines = {
            "local": {"engine": "local"},
            "ray x1": {**ray, "max_in_flight": 1},
            "ray x2": {**ray, "max_in_flight": 2},
        }
        warm = root / "warm-up"
        warm_archive = warm / "archive"
        warm_labels = write_archive(warm_archive, 2)
        for name in ("local", "ray x2"):
            work = warm / name.replace(" ", "")
            work.mkdir(parents=True)
            url = f"sqlite:///{work / 'node.sqlite3'}"
            run(warm_archive, settings_for(work, url, warm_labels, engines[name]))
        print(f"warm-up done, load {os.getloadavg()[0]:.1f}", flush=True)
        for backend in ("sqlite", "postgresql"):
            baseline = one_worker = None
            for name, compute in engines.items():
                work = root / f"{backend}-{name.replace(' ', '')}"
                work.mkdir()
                url = (
                    postgres.new_database()
                    if backend == "postgresql"
                    else f"sqlite:///{work / 'node.sqlite3'}"
                )
                seconds, rows, keys, amended = run(
                    archive, settings_for(work, url, labels, compute)
                )
                rate = args.studies / seconds * 60.0
                baseline = baseline or rate
                one_worker = rate if name == "ray x1" else one_worker
                scaling = f" x{rate / one_worker:.2f} vs ray x1" if name == "ray x2" else ""
                ok = "ok" if rows == keys == args.studies else "LOST OR DUPLICATED"
                print(
                    f"{backend:10s} {name:7s} {seconds:6.1f} s {rate:5.1f} studies/min "
                    f"x{rate / baseline:.2f} vs local{scaling}  results {rows}/{args.studies} "
                    f"{ok}, {amended} amended  load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
