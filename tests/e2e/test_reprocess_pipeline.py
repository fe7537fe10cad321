"""`qsm-monitor reprocess` through the real pipeline: re-run from retained files, in place."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from dicom_node.cli import app
from dicom_node.process.batch import process_paths
from dicom_node.synthetic.modules import PatientIdentity
from dicom_node.synthetic.series import write_acquisition_series
from monitor.cli import NOT_REPORTABLE_EXIT_CODE
from monitor.db import configured_engine
from monitor.phantom.simulate import FAST_CONFIG, simulate_phantom
from monitor.settings import load_settings
from monitor.tracking.schema import history_sessions
from monitor.tracking.tables import Acquisition

pytestmark = pytest.mark.slow

TINY_HEAD = replace(FAST_CONFIG, shape=(40, 48, 20), voxel_mm=(4.0, 4.0, 6.0), n_echoes=3)


def _processed_at(settings) -> list:
    with history_sessions(configured_engine(settings.storage))() as session:
        return list(session.scalars(select(Acquisition.processed_at)))


def test_reprocess_reruns_retained_visits_in_place(db_url: str, tmp_path: Path) -> None:
    config = tmp_path / "qsm-monitor.toml"
    # external segmentation without labels declines at once: this test is about re-running
    config.write_text(
        f'[storage]\ndata_dir = "{tmp_path / "data"}"\ndatabase_url = "{db_url}"\n'
        '[segmentation]\nmethod = "external"\n[recon]\ntv_iterations = 5\n'
    )
    settings = load_settings(config)
    folder = tmp_path / "study"
    identity = PatientIdentity(patient_id="RP-1", study_date="20250110")
    write_acquisition_series(simulate_phantom(TINY_HEAD).acquisition, folder, "siemens", identity)
    (first,) = process_paths([folder], settings)
    assert first["error"] is None and first["identity_status"] == "confirmed"
    (before,) = _processed_at(settings)

    result = CliRunner().invoke(app, ["reprocess", "RP-1", "--config", str(config), "--json"])
    assert result.exit_code == NOT_REPORTABLE_EXIT_CODE, result.output  # no labels: no values
    (again,) = json.loads(result.stdout)
    assert again["error"] is None
    assert again["idempotency_key"] == first["idempotency_key"]
    assert again["pipeline_version"] == first["pipeline_version"]
    (after,) = _processed_at(settings)  # the same row, updated
    assert after > before

    shutil.rmtree(folder)
    gone = CliRunner().invoke(app, ["reprocess", "RP-1", "--config", str(config), "--json"])
    assert gone.exit_code == 1
    assert "no longer retained" in json.loads(gone.stdout)[0]["error"]
