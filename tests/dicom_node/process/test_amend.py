"""Amended reports: a later visit reported first, then its earlier exam back-filled.

The later visit's assessment changes (it gains a previous visit and change values); the
worker queues an amendment with the back-fill's result, and the amendment re-issues the
SR (replacing the first one), the trend plot and the FHIR bundle (conditional updates) for
every destination, exactly once.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest
from sqlalchemy import select
from support.phantom_labels import write_true_labels

from dicom_node.assemble.study import assemble_study
from dicom_node.db import configured_engine, create_schema
from dicom_node.deliver.outbox import Delivery, Outbox
from dicom_node.process.amend import AMEND_PREFIX, due_amendments
from dicom_node.process.worker import Worker
from dicom_node.queue.jobs import Job, JobQueue
from dicom_node.queue.leasing import WorkState
from dicom_node.queue.results import results_for_study
from dicom_node.synthetic.modules import PatientIdentity
from dicom_node.synthetic.series import write_acquisition_series
from monitor.phantom import PhantomConfig, simulate_phantom
from monitor.settings import Settings, load_settings

pytestmark = pytest.mark.slow

HEAD = PhantomConfig(
    shape=(48, 56, 40), voxel_mm=(3.0, 3.0, 3.0), n_echoes=2, field_margin_mm=9.0, supersample=False
)
LATER = PatientIdentity(patient_id="AMEND-1", study_date="20260301", accession_number="A2")
EARLIER = PatientIdentity(patient_id="AMEND-1", study_date="20250301", accession_number="A1")
DCIODVFY = shutil.which("dciodvfy") or "/usr/bin/dciodvfy"
DSRDUMP = "/usr/bin/dsrdump"


@pytest.fixture(scope="module")
def visits(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, list[Path]], Path]:
    """Both visits as Siemens series, and the phantom's true labels as an aseg-style NIfTI
    (external segmentation: the test is about amendments, not registration)."""
    root = tmp_path_factory.mktemp("amend")
    phantom = simulate_phantom(HEAD, 0)
    files = {
        identity.study_uid: write_acquisition_series(
            phantom.acquisition, root / identity.study_date, "siemens", identity
        )
        for identity in (LATER, EARLIER)
    }
    return files, write_true_labels(phantom, root / "aseg.nii.gz")


def _settings(tmp_path: Path, labels: Path, db_url: str) -> Settings:
    return load_settings(
        None,
        storage={"data_dir": tmp_path / "data", "database_url": db_url},
        jobs={"backoff_s": 0.0},
        recon={"tv_iterations": 30},
        segmentation={"method": "external", "external_path": labels},
        destinations=[{"name": "drop", "kind": "folder", "path": tmp_path / "drop"}],
    )


def _worker(settings: Settings) -> Worker:
    sessions = create_schema(configured_engine(settings.storage))
    return Worker(settings, JobQueue(sessions, settings.jobs), Outbox(sessions, settings), "w")


def _enqueue(worker: Worker, paths: list[Path], study_uid: str) -> None:
    (assembled,) = assemble_study(paths).acquisitions
    worker.queue.enqueue(assembled.idempotency_key, study_uid, {"paths": [str(p) for p in paths]})


def _errors(tool: list[str]) -> list[str]:
    run = subprocess.run(tool, capture_output=True, text=True, check=False)
    return [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]


def test_back_filled_exam_amends_the_later_report_once(visits, db_url: str, tmp_path: Path) -> None:
    files, labels = visits
    settings = _settings(tmp_path, labels, db_url)
    worker = _worker(settings)
    _enqueue(worker, files[LATER.study_uid], LATER.study_uid)
    assert worker.run_once()
    (first,) = results_for_study(worker.queue.sessions, LATER.study_uid)
    assert first.record["error"] is None and first.record["previous_study_uid"] is None
    thalamus = first.record["structures"]["thalamus"]
    assert thalamus["mean_ppb"] is not None and thalamus["change_ppb"] is None

    _enqueue(worker, files[EARLIER.study_uid], EARLIER.study_uid)  # the late arrival
    assert worker.run_once()
    with worker.queue.sessions() as session:
        (amend_job,) = session.scalars(
            select(Job).where(Job.idempotency_key.startswith(AMEND_PREFIX))
        ).all()
    assert amend_job.payload == {"amend": first.record["idempotency_key"]}
    assert amend_job.study_uid == LATER.study_uid

    assert worker.run_once()  # the amendment
    assert worker.queue.get(amend_job.id).state == WorkState.DONE
    original, amended = results_for_study(worker.queue.sessions, LATER.study_uid)
    assert original.id == first.id and original.record == first.record  # kept as sent
    record = amended.record
    assert (
        record["amendment"] == 1
        and record["superseded_risk_level"] == first.record["risk"]["level"]
    )
    assert record["previous_study_uid"] == EARLIER.study_uid
    assert record["structures"]["thalamus"]["change_ppb"] == pytest.approx(0.0, abs=1.0)
    assert record["structures"]["thalamus"]["mean_ppb"] == thalamus["mean_ppb"]  # not re-measured
    outputs = {name: Path(path) for name, path in record["outputs"].items()}
    assert outputs["qsm_parametric_map"] == Path(first.record["outputs"]["qsm_parametric_map"])
    assert outputs["sr"].parent.name.endswith("-amendment-1")

    old_sr = pydicom.dcmread(first.record["outputs"]["sr"])
    new_sr = pydicom.dcmread(outputs["sr"])
    assert new_sr.SOPInstanceUID != old_sr.SOPInstanceUID
    assert new_sr.SeriesInstanceUID != old_sr.SeriesInstanceUID
    assert new_sr.StudyInstanceUID == old_sr.StudyInstanceUID
    (predecessor,) = new_sr.PredecessorDocumentsSequence
    referenced = predecessor.ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert referenced.ReferencedSOPInstanceUID == old_sr.SOPInstanceUID
    if Path(DCIODVFY).exists():
        assert _errors([DCIODVFY, str(outputs["sr"])]) == []
    if Path(DSRDUMP).exists():
        dump = subprocess.run([DSRDUMP, str(outputs["sr"])], capture_output=True, text=True)
        assert dump.returncode == 0 and "Magnetic Susceptibility" in dump.stdout

    bundle = json.loads(outputs["fhir_bundle"].read_text())
    methods = {e["resource"]["resourceType"]: e["request"]["method"] for e in bundle["entry"]}
    assert methods["Observation"] == methods["DiagnosticReport"] == "PUT"

    with worker.queue.sessions() as session:
        routed = {
            row.output
            for row in session.scalars(
                select(Delivery).where(Delivery.source_key == amended.idempotency_key)
            )
        }
    assert {"sr", "fhir_bundle", "trend_plot"} <= routed
    assert "qsm_parametric_map" not in routed  # unchanged, delivered with the first report

    # nothing more is due, and a repeated trigger adds no job
    assert due_amendments(worker.queue.sessions, settings, [LATER.study_uid]) == []
    assert not worker.run_once()
