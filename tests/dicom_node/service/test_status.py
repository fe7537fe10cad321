"""`qsm-monitor status` as a health check: C-ECHO against a live listener, exit codes, JSON."""

from __future__ import annotations

import json
from pathlib import Path

from support.node_helpers import free_port
from typer.testing import CliRunner

from dicom_node.cli import app
from dicom_node.db import open_node_db
from dicom_node.receive.listener import Listener
from dicom_node.service.status import remove_state, write_state
from monitor.settings import load_settings


def _config(tmp_path: Path, port: int, node_extra: str = "") -> Path:
    config = tmp_path / "qsm-monitor.toml"
    config.write_text(
        f'[node]\nport = {port}\n{node_extra}\n[storage]\ndata_dir = "{tmp_path / "data"}"\n'
    )
    return config


def test_status_of_a_node_that_never_ran_is_unhealthy_and_creates_nothing(tmp_path: Path) -> None:
    config = _config(tmp_path, 1)
    result = CliRunner().invoke(app, ["status", "--config", str(config), "--json"])
    assert result.exit_code == 1
    (problem,) = json.loads(result.stdout)["problems"]
    assert problem.startswith("no qsm-monitor data in") and str(config) in problem
    assert not load_settings(config).storage.data_dir.exists()


def test_status_is_unhealthy_when_no_service_runs(tmp_path: Path) -> None:
    config = _config(tmp_path, 1)
    with open_node_db(load_settings(config)):  # the node ran once: its data folder exists
        pass
    result = CliRunner().invoke(app, ["status", "--config", str(config), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["listener"]["running"] is False
    assert report["jobs"] == []
    assert report["job_counts"]["pending"] == 0
    assert report["compute"]["engine"] == "local" and report["compute"]["tasks_in_flight"] == 0
    assert report["problems"] == [
        "the service is not running (it has not been started with this data folder)"
    ]
    text = CliRunner().invoke(app, ["status", "--config", str(config)]).stdout
    assert "  not healthy: the service is not running" in text


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


def test_status_is_healthy_with_a_calling_ae_allow_list(tmp_path: Path) -> None:
    """The shipped health check calls as QSMSTATUS; an allow-list once made it fail forever."""
    config = _config(tmp_path, free_port(), 'allowed_calling_ae = ["SCANNER"]\n')
    settings = load_settings(config)
    with Listener(settings):
        write_state(settings, workers=[])
        result = CliRunner().invoke(app, ["status", "--config", str(config), "--json"])
    remove_state(settings)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["listener"]["problem"] is None


def test_an_unhealthy_status_says_why(tmp_path: Path) -> None:
    config = _config(tmp_path, free_port())
    settings = load_settings(config)
    with open_node_db(settings):  # the node ran once
        pass
    write_state(settings, workers=[])  # a live pid (ours) but no listener on the port
    result = CliRunner().invoke(app, ["status", "--config", str(config)])
    remove_state(settings)
    assert result.exit_code == 1
    assert "not healthy: no DICOM answer from 127.0.0.1:" in result.stdout


def test_status_is_unhealthy_when_the_disk_is_nearly_full_or_a_series_is_stuck(
    tmp_path: Path,
) -> None:
    from pydicom.uid import MRImageStorage

    from dicom_node.db import open_node_db, utcnow
    from dicom_node.receive.catalogue import InstanceHeader, record_instance
    from dicom_node.receive.completion import mark_stuck

    port = free_port()
    config = _config(tmp_path, port, "")
    config.write_text(config.read_text() + "min_free_mb = 1e12\n")  # more than any disk has
    settings = load_settings(config)
    with open_node_db(settings) as sessions, sessions() as session:
        header = InstanceHeader("1.2.3.4.5.6", MRImageStorage, "1.2.3.4.5", "1.2.3.4.5.7")
        record_instance(session, header, "/nowhere.dcm", utcnow())
        mark_stuck(session, header.series_uid)
        session.commit()
    with Listener(settings):
        write_state(settings, workers=[])
        result = CliRunner().invoke(app, ["status", "--config", str(config), "--json"])
    remove_state(settings)
    report = json.loads(result.stdout)
    assert result.exit_code == 1
    assert report["listener"]["healthy"] is True  # the listener alone is fine
    assert report["stuck_series"] == ["1.2.3.4.5.7"]
    assert any(p.startswith("disk nearly full") for p in report["problems"])
    assert "1 series could not be handed over (state stuck)" in report["problems"]
