"""`qsm-monitor cohort export`: the history as a flat CSV that `norms fit` reads back."""

from __future__ import annotations

import csv
from pathlib import Path

from support.tracking_helpers import shifted, visit
from typer.testing import CliRunner

from dicom_node.cli import app
from monitor.db import configured_engine
from monitor.norms.controls_csv import read_controls_csv
from monitor.settings import load_settings
from monitor.tracking.history import record_visit
from monitor.tracking.schema import history_sessions


def _history(tmp_path: Path) -> Path:
    config = tmp_path / "qsm-monitor.toml"
    config.write_text(f'[storage]\ndata_dir = "{tmp_path / "data"}"\n')
    settings = load_settings(config)
    sessions = history_sessions(configured_engine(settings.storage))
    record_visit(sessions, visit("20240301", patient_id="P-1"), settings)
    record_visit(sessions, visit("20250301", shifted(thalamus=-12.0), patient_id="P-1"), settings)
    failed = visit("20250401", patient_id="P-2", qc_failure="thalamus left volume 31 ml")
    record_visit(sessions, failed, settings)
    return config


def _export(config: Path, out: Path, *flags: str) -> list[dict[str, str]]:
    args = ["cohort", "export", "--config", str(config), "--out", str(out), *flags]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    with out.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_every_visit_structure_and_side_with_qc_flags(tmp_path):
    rows = _export(_history(tmp_path), tmp_path / "cohort.csv")

    assert {r["visit_date"] for r in rows} == {"2024-03-01", "2025-03-01", "2025-04-01"}
    p1_thalamus = [
        r
        for r in rows
        if r["subject_id"] == "P-1" and (r["structure"], r["side"]) == ("thalamus", "bilateral")
    ]
    assert [float(r["mean_ppb"]) for r in p1_thalamus] == [-1.0, -13.0]
    assert [r["years_from_first_visit"] for r in p1_thalamus] == ["0.0", "1.0"]
    failed = [r for r in rows if r["subject_id"] == "P-2"]
    assert len(failed) == 12 and {r["reportable"] for r in failed} == {"False"}
    assert {r["mean_ppb"] for r in failed} == {""}
    assert failed[0]["qc_reason"] == "thalamus left volume 31 ml"


def test_controls_form_is_read_by_norms_fit_and_pseudonyms_hide_ids(tmp_path):
    out = tmp_path / "controls.csv"
    rows = _export(_history(tmp_path), out, "--controls", "--pseudonymise")

    assert {r["reportable"] for r in rows} == {"True"}
    assert not any(r["subject_id"].startswith("P-") or r["study_uid"] for r in rows)
    controls = read_controls_csv(out)  # what `norms fit` reads
    assert len(controls) == len(rows) and {c.subject_id for c in controls} == {
        rows[0]["subject_id"]
    }


def test_pseudonymised_rows_keep_the_timeline_but_no_dates_uids_or_scanner_model(tmp_path):
    plain = _export(_history(tmp_path), tmp_path / "plain.csv")
    rows = _export(_history(tmp_path), tmp_path / "pseudo.csv", "--pseudonymise")

    assert len(rows) == len(plain)
    for row, original in zip(rows, plain, strict=True):
        assert (row["visit_date"], row["study_uid"], row["issuer"], row["model"]) == ("",) * 4
        assert row["years_from_first_visit"] == original["years_from_first_visit"]
        assert float(row["age_years"]) == round(float(original["age_years"]))
        assert row["mean_ppb"] == original["mean_ppb"] and row["vendor"] == original["vendor"]
    assert original["model"] and original["visit_date"]  # there was something to drop
