"""`qsm-monitor reprocess`: the retention rule decides which visits can be re-run."""

from __future__ import annotations

import json
from pathlib import Path

from support.tracking_helpers import visit
from typer.testing import CliRunner

from dicom_node.cli import app
from monitor.db import configured_engine
from monitor.settings import load_settings
from monitor.tracking.history import record_visit
from monitor.tracking.schema import history_sessions


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "qsm-monitor.toml"
    path.write_text(f'[storage]\ndata_dir = "{tmp_path / "data"}"\n')
    return path


def test_visits_without_retained_inputs_are_reported_and_kept(tmp_path: Path) -> None:
    config = _config(tmp_path)
    settings = load_settings(config)
    sessions = history_sessions(configured_engine(settings.storage))
    kept = tmp_path / "kept.dcm"
    kept.write_text("not DICOM any more")
    record_visit(sessions, visit("20240301"), settings)  # its spool files are gone
    record_visit(sessions, visit("20250301", input_paths=(str(kept),)), settings)

    result = CliRunner().invoke(app, ["reprocess", "P-1", "--config", str(config), "--json"])
    assert result.exit_code == 1
    first, second = json.loads(result.stdout)
    assert first["study_uid"] == visit("20240301").study_uid  # oldest first
    assert "no longer retained" in first["error"]
    assert "no longer form this acquisition" in second["error"]
    unknown = CliRunner().invoke(app, ["reprocess", "NOBODY", "--config", str(config)])
    assert unknown.exit_code == 1 and "no visits of this patient" in unknown.stderr
    patient = CliRunner().invoke(app, ["patient", "P-1", "--config", str(config), "--json"])
    entries = json.loads(patient.stdout)["entries"]
    assert [e["inputs_retained"] for e in entries] == [False, True]
    assert all(e["risk_level"] == "not elevated" for e in entries)  # old values kept


def test_no_history_is_said_and_not_created(tmp_path: Path) -> None:
    config = _config(tmp_path)
    for args in (["reprocess", "NOBODY"], ["resend", "1.2.3"]):
        result = CliRunner().invoke(app, [*args, "--config", str(config)])
        assert result.exit_code == 1
        assert result.stderr.startswith("error: no qsm-monitor data in ")
    assert not (tmp_path / "data").exists()
