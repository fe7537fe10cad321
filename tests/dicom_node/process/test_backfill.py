"""`qsm-monitor backfill`: an archive in visit order, safe to resume, nothing processed twice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.delivery_helpers import segmentation_config, small_study
from typer.testing import CliRunner

from dicom_node.cli import app
from dicom_node.db import open_node_db
from dicom_node.queue.jobs import JobQueue
from dicom_node.queue.results import results_for_study
from dicom_node.synthetic.modules import PatientIdentity
from monitor.settings import load_settings

LATER = PatientIdentity(patient_id="BACK-1", study_date="20260301", accession_number="B2")
EARLIER = PatientIdentity(patient_id="BACK-1", study_date="20250301", accession_number="B1")


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # SQLite: the other tests
def test_archive_is_processed_oldest_first_and_resumed_without_repeats(
    db_url: str, tmp_path: Path
) -> None:
    archive = tmp_path / "archive"
    _, labels = small_study(archive / "later", LATER)  # written first: order comes from dates
    small_study(archive / "earlier", EARLIER)
    config = tmp_path / "qsm-monitor.toml"
    config.write_text(
        f'[storage]\ndata_dir = "{tmp_path / "data"}"\ndatabase_url = "{db_url}"\n'
        f"[recon]\ntv_iterations = 5\n[jobs]\nbackoff_s = 0.0\n{segmentation_config(labels)}"
    )
    runner = CliRunner()
    args = ["backfill", str(archive), "--config", str(config), "--json"]

    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    assert (summary["found"], summary["processed"], summary["failed"]) == (2, 2, 0)
    assert "[2/2]" in first.stderr

    settings = load_settings(config)
    with open_node_db(settings) as sessions:
        jobs = sorted(JobQueue(sessions, settings.jobs).recent(), key=lambda job: job.id)
        assert [job.study_uid for job in jobs] == [EARLIER.study_uid, LATER.study_uid]
        (later,) = results_for_study(sessions, LATER.study_uid)
        assert later.record["previous_study_uid"] == EARLIER.study_uid  # history in order

    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "--resume" in again.stderr
    resumed = runner.invoke(app, [*args, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    summary = json.loads(resumed.stdout)
    assert (summary["already_done"], summary["processed"]) == (2, 0)
    with open_node_db(settings) as sessions:
        assert len(results_for_study(sessions, LATER.study_uid)) == 1


def test_visit_order_interleaves_patients_and_keeps_each_history_in_order() -> None:
    """Claimed in this order, two tasks in flight never hold two visits of one patient
    while other patients wait (those would finish out of order and be amended)."""
    from types import SimpleNamespace

    from dicom_node.process.backfill import visit_order

    def acquisition(patient: str, date: str) -> SimpleNamespace:
        source = SimpleNamespace(patient_id=patient, study_date=date, study_time="")
        return SimpleNamespace(source=source, idempotency_key=f"{patient}-{date}")

    archive = [
        acquisition("B", "20260101"), acquisition("A", "20250101"), acquisition("A", "20240101"),
        acquisition("B", "20240601"), acquisition("C", "20230101"), acquisition("A", "20260101"),
    ]  # fmt: skip
    ordered = [item.idempotency_key for item in visit_order(archive)]  # type: ignore[arg-type]
    assert ordered == [
        "A-20240101", "B-20240601", "C-20230101",  # every first visit
        "A-20250101", "B-20260101",  # then every second
        "A-20260101",
    ]  # fmt: skip


def test_an_archive_without_acquisitions_says_what_it_set_aside_and_fails(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    for name in ("notes.txt", "scan.dcm"):
        (archive / name).write_bytes(b"not DICOM at all")
    config = tmp_path / "qsm-monitor.toml"
    config.write_text(f'[storage]\ndata_dir = "{tmp_path / "data"}"\n')

    result = CliRunner().invoke(app, ["backfill", str(archive), "--config", str(config)])

    assert result.exit_code == 1, result.output
    assert "set aside: unreadable file" in result.stderr and "(not DICOM)" in result.stderr
    assert "0 found (2 set aside)" in result.stdout
    assert result.stderr.strip().endswith(
        "error: no multi-echo GRE acquisition found in the given paths"
    )
