"""`qsm-monitor status` shows dead letters; `qsm-monitor resend STUDY_UID` re-queues them."""

from __future__ import annotations

import json
from pathlib import Path

from support.delivery_helpers import (
    KEY,
    STUDY_UID,
    acquisition_outputs,
    drain,
    make_outbox,
    store_result,
)
from support.node_helpers import free_port
from typer.testing import CliRunner

from dicom_node.cli import app
from dicom_node.queue.leasing import WorkState
from monitor.settings import load_settings


def write_config(tmp_path: Path) -> Path:
    config = tmp_path / "qsm-monitor.toml"
    config.write_text(
        f"""
[storage]
data_dir = "{tmp_path / "data"}"

[outbox]
max_attempts = 2
backoff_s = 0

[[destinations]]
name = "pacs"
kind = "dicom"
host = "127.0.0.1"
port = {free_port()}
ae_title = "DOWN"
"""
    )
    return config


def test_dead_letters_show_in_status_and_resend_requeues_them(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    outbox = make_outbox(load_settings(config))
    outputs = acquisition_outputs(tmp_path / "data" / "outputs" / "acq1")
    store_result(outbox, outputs)
    outbox.enqueue(KEY, STUDY_UID, outputs)
    drain(outbox)

    runner = CliRunner()
    status = runner.invoke(app, ["status", "--config", str(config), "--json"])
    assert status.exit_code == 1  # no service running: not healthy, but the report is complete
    report = json.loads(status.stdout)
    assert report["delivery_counts"][WorkState.FAILED] == 2
    dead = {(d["study_uid"], d["output"], d["destination"]) for d in report["dead_letters"]}
    assert dead == {(STUDY_UID, "sr", "pacs"), (STUDY_UID, "qsm_mr_series", "pacs")}
    assert all(d["attempts"] == 2 and "association" in d["error"] for d in report["dead_letters"])
    text = runner.invoke(app, ["status", "--config", str(config)])
    assert f"{STUDY_UID} sr -> pacs after 2 attempts" in text.stdout

    resent = runner.invoke(app, ["resend", STUDY_UID, "--config", str(config), "--json"])
    assert resent.exit_code == 0, resent.output
    assert json.loads(resent.stdout) == {"study_uid": STUDY_UID, "queued": 2}
    assert {row.state for row in outbox.rows()} == {WorkState.PENDING}
    assert outbox.dead_letters() == []

    unknown = runner.invoke(app, ["resend", "1.2.3.4", "--config", str(config)])
    assert unknown.exit_code == 1
    assert "no deliveries for this study" in unknown.stderr
