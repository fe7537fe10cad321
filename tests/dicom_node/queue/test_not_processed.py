"""A series that arrived but could not become an acquisition is listed in `status` with its
reason (on SQLite and PostgreSQL), and leaves the list once a later arrival completes it."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pydicom
from support.node_acquisitions import small_acquisition
from typer.testing import CliRunner

from dicom_node.cli import app
from dicom_node.db import create_schema, make_engine, utcnow
from dicom_node.queue import JobQueue, enqueue_study, not_processed
from dicom_node.receive.catalogue import InstanceHeader, record_instance
from dicom_node.receive.completion import find_complete_series
from dicom_node.synthetic.modules import PatientIdentity
from dicom_node.synthetic.series import write_acquisition_series
from monitor.settings import load_settings


def _arrive(sessions, paths: list[Path], when) -> None:  # type: ignore[no-untyped-def]
    with sessions() as session:
        for path in paths:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            header = InstanceHeader.from_dataset(ds, ds.SOPInstanceUID, ds.SOPClassUID)
            record_instance(session, header, str(path), when)
        find_complete_series(session, when + timedelta(minutes=5), 60.0)
        session.commit()


def test_a_magnitude_without_its_phase_is_listed_until_the_phase_arrives(
    tmp_path: Path, db_url: str
) -> None:
    config = tmp_path / "qsm-monitor.toml"
    config.write_text(f'[storage]\ndata_dir = "{tmp_path / "data"}"\ndatabase_url = "{db_url}"\n')
    settings = load_settings(config)
    sessions = create_schema(make_engine(db_url))
    queue = JobQueue(sessions, settings.jobs)
    identity = PatientIdentity()
    files = write_acquisition_series(small_acquisition(), tmp_path / "study", "siemens", identity)
    magnitude = [p for p in files if p.name.startswith("s010_")]
    phase = [p for p in files if p.name.startswith("s011_")]
    start = utcnow()

    _arrive(sessions, magnitude, start)
    assert enqueue_study(sessions, queue, identity.study_uid) == []
    status = CliRunner().invoke(app, ["status", "--config", str(config), "--json"])
    (listed,) = json.loads(status.stdout)["not_processed_series"]
    assert listed["study_uid"] == identity.study_uid
    assert listed["reason"] == "no phase images"
    text = CliRunner().invoke(app, ["status", "--config", str(config)]).stdout
    assert "series received but not processed" in text and "no phase images" in text

    _arrive(sessions, phase, start + timedelta(minutes=10))
    (job,) = enqueue_study(sessions, queue, identity.study_uid)
    assert job.study_uid == identity.study_uid
    assert not_processed(sessions) == []
