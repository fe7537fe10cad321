"""`qsm-monitor status` as a health check: C-ECHO against a live listener, exit codes, JSON."""

from __future__ import annotations

import json
from pathlib import Path

from support.node_helpers import free_port
from typer.testing import CliRunner

from dicom_node.cli import app
from dicom_node.receive.listener import Listener
from dicom_node.service.status import remove_state, write_state
from monitor.settings import load_settings


def _config(tmp_path: Path, port: int) -> Path:
    config = tmp_path / "qsm-monitor.toml"
    config.write_text(f'[node]\nport = {port}\n\n[storage]\ndata_dir = "{tmp_path / "data"}"\n')
    return config


def test_status_is_unhealthy_when_no_service_runs(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["status", "--config", str(_config(tmp_path, 1)), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["listener"]["running"] is False
    assert report["jobs"] == []
    assert report["job_counts"]["pending"] == 0
    assert report["compute"]["engine"] == "local" and report["compute"]["tasks_in_flight"] == 0


def test_status_is_healthy_while_the_listener_answers(tmp_path: Path) -> None:
    port = free_port()
    config = _config(tmp_path, port)
    settings = load_settings(config)
    with Listener(settings):
        write_state(settings, workers=[])
        healthy = CliRunner().invoke(app, ["status", "--config", str(config), "--json"])
    stopped = CliRunner().invoke(app, ["status", "--config", str(config)])
    remove_state(settings)
    assert healthy.exit_code == 0, healthy.output
    listener = json.loads(healthy.stdout)["listener"]
    assert listener["echo"] is True and listener["port"] == port
    assert stopped.exit_code == 1
    assert "echo: False" in stopped.stdout
    assert "compute: local (" in stopped.stdout
