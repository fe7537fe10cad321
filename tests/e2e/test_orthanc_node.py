"""Our node against a real Orthanc on loopback: we store into it, and it routes studies to us."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread
from support.node_acquisitions import small_acquisition
from support.node_helpers import free_port, write_series
from support.node_peers import ORTHANC, running_orthanc, wait_for

from dicom_node.db import configured_engine, create_schema
from dicom_node.deliver.outbox import Outbox
from dicom_node.queue.leasing import WorkState
from dicom_node.receive.listener import Listener
from dicom_node.service.serve import Service
from dicom_node.synthetic.modules import PatientIdentity
from dicom_node.synthetic.series import write_acquisition_series
from monitor.settings import load_settings

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not ORTHANC.exists(), reason="Orthanc (Debian package) not installed"),
]


def test_outbox_stores_into_orthanc(db_url: str, tmp_path: Path) -> None:
    with running_orthanc(tmp_path, {}) as pacs:
        settings = load_settings(
            None,
            storage={"data_dir": tmp_path / "data", "database_url": db_url},
            destinations=[
                {
                    "name": "pacs",
                    "kind": "dicom",
                    "host": "127.0.0.1",
                    "port": pacs.dicom_port,
                    "ae_title": pacs.ae_title,
                }
            ],
        )
        outbox = Outbox(create_schema(configured_engine(settings.storage)), settings)
        files = write_series(tmp_path / "out" / "k", 3)
        outbox.enqueue("k", "1.2.3", {"qsm_mr_series": files[0].parent})
        while outbox.deliver_next("d"):
            pass
        assert outbox.counts()[WorkState.DONE] == 1  # the series is one delivery
        with pacs.client() as client:
            stored = client.get("/instances", params={"expand": "true"}).json()
        assert len(stored) == 3
        sop_uids = {i["MainDicomTags"]["SOPInstanceUID"] for i in stored}
        assert sop_uids == {dcmread(f).SOPInstanceUID for f in files}


def test_orthanc_routes_a_study_to_our_node(db_url: str, tmp_path: Path) -> None:
    node_port = free_port()
    settings = load_settings(
        None,
        storage={"data_dir": tmp_path / "data", "database_url": db_url},
        node={"port": node_port, "stable_after_s": 0.5},
    )
    identity = PatientIdentity()
    files = write_acquisition_series(small_acquisition(), tmp_path / "in", "siemens", identity)
    service = Service(settings)
    listener = Listener(settings, service.on_series_complete, sessions=service.sessions)
    with listener, running_orthanc(tmp_path, {"qsm": ("QSMMON", node_port)}) as pacs:
        with pacs.client() as client:
            for path in files:
                client.post("/instances", content=path.read_bytes()).raise_for_status()
            (study_id,) = client.get("/studies").json()
            sent = client.post(
                "/modalities/qsm/store", json={"Resources": [study_id], "Synchronous": True}
            )
            sent.raise_for_status()
            assert sent.json()["InstancesCount"] == len(files)
        jobs = wait_for(lambda: service.queue.recent(), 30.0, "the routed study to be enqueued")
    (job,) = jobs
    assert job.study_uid == identity.study_uid
    assert len(job.payload["paths"]) == len(files)
    assert job.state == WorkState.PENDING
