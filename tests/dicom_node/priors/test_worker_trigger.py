"""The worker queues a prior fetch when it stores a visit that has no comparable prior, in
the transaction of its result (one reconstruction of a small phantom: slow)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select
from support.phantom_labels import write_true_labels

from dicom_node.assemble.study import assemble_study
from dicom_node.db import create_schema, database_url, make_engine
from dicom_node.deliver.outbox import Outbox
from dicom_node.priors.requests import PriorFetch
from dicom_node.process.worker import Worker
from dicom_node.queue.jobs import JobQueue
from dicom_node.queue.results import results_for_study
from dicom_node.synthetic.modules import PatientIdentity
from dicom_node.synthetic.series import write_acquisition_series
from monitor.phantom import PhantomConfig, simulate_phantom
from monitor.settings import load_settings

pytestmark = pytest.mark.slow

HEAD = PhantomConfig(
    shape=(48, 56, 40), voxel_mm=(3.0, 3.0, 3.0), n_echoes=2, field_margin_mm=9.0, supersample=False
)
NEWEST = PatientIdentity(patient_id=" TRIGGER-1 ", study_date="20260301", accession_number="T1")


def test_a_first_visit_queues_one_prior_fetch_with_its_result(tmp_path: Path) -> None:
    phantom = simulate_phantom(HEAD, 0)
    files = write_acquisition_series(phantom.acquisition, tmp_path / "in", "siemens", NEWEST)
    labels = write_true_labels(phantom, tmp_path / "aseg.nii.gz")
    source = {"name": "pacs", "kind": "dicom", "host": "127.0.0.1", "port": 104}
    settings = load_settings(
        None,
        storage={"data_dir": tmp_path / "data"},
        recon={"tv_iterations": 10},
        segmentation={"method": "external", "external_path": labels},
        destinations=[{**source, "ae_title": "PACS", "outputs": []}],
        priors={"enabled": True, "source": "pacs", "lookback_years": 5},
    )
    sessions = create_schema(make_engine(database_url(settings.storage.data_dir)))
    worker = Worker(settings, JobQueue(sessions, settings.jobs), Outbox(sessions, settings), "w")
    (assembled,) = assemble_study(files).acquisitions
    payload = {"paths": [str(p) for p in files]}
    worker.queue.enqueue(assembled.idempotency_key, NEWEST.study_uid, payload)
    assert worker.run_once()
    (result,) = results_for_study(sessions, NEWEST.study_uid)
    assert result.record["error"] is None and result.record["previous_study_uid"] is None
    with sessions() as session:
        (fetch,) = session.scalars(select(PriorFetch))
    assert (fetch.patient_id, fetch.issuer) == ("TRIGGER-1", "")  # as the history keys it
    assert fetch.until == "20260301" and fetch.trigger_study_uid == NEWEST.study_uid
    assert fetch.since == f"{date.today().year - 5:04d}{date.today():%m%d}"  # lookback_years
