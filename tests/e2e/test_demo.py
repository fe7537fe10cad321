"""`qsm-monitor demo` as a newcomer runs it: a real process, a real listener, real outputs.

One demo run (the patient's two yearly visits and the control's two) is shared by the tests;
they check what the demo promises: the table names every structure, the patient's risk is
elevated and the control's is not, and every file it lists exists and passes the standards'
own validators (dciodvfy, dsrdump, the independent FHIR validator).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from support.fhir_validation import install_validator, problems, validate
from support.outputs_support import dsrdump, validator_errors

pytestmark = pytest.mark.slow

QSM_MONITOR = str(Path(sys.executable).with_name("qsm-monitor"))
DEMO_TIMEOUT_S = 1200


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path]:
    keep = tmp_path_factory.mktemp("demo") / "kept"
    run = subprocess.run(
        [QSM_MONITOR, "demo", "--keep", str(keep), "--visits", "2"],
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_S,
        env={**os.environ, "COLUMNS": "200"},
    )
    return run, keep


def _records(keep: Path) -> list[dict]:
    with sqlite3.connect(keep / "qsm-monitor.sqlite3") as db:
        return [json.loads(row[0]) for row in db.execute("SELECT record FROM results ORDER BY id")]


def test_demo_succeeds_and_shows_progress(demo):
    run, keep = demo
    assert run.returncode == 0, run.stderr[-3000:]
    for stage in ("C-STORE of", "inversion", "segmentation", "delivering outputs"):
        assert stage in run.stderr
    printed = " ".join(run.stdout.split())
    assert f"Demo data directory: {keep}" in printed
    assert "kept as asked" in printed and "delete it when done" not in printed


def test_demo_table_names_every_structure_and_each_risk_level(demo):
    run, _ = demo
    for structure in ("thalamus", "caudate", "putamen", "globus pallidus"):
        assert structure in run.stdout
    assert re.search(r"patient: progression risk elevated", run.stdout)
    assert re.search(r"control: progression risk not elevated", run.stdout)


def test_tracking_sees_the_simulated_direction(demo):
    _, keep = demo
    follow_ups = [r for r in _records(keep) if r.get("previous_study_uid")]
    by_patient = {r["patient_id"]: r for r in follow_ups}
    patient, control = by_patient["QSM-DEMO-MS01"], by_patient["QSM-DEMO-HC01"]
    assert patient["structures"]["thalamus"]["change_ppb"] < 0
    assert patient["structures"]["globus_pallidus"]["change_ppb"] > 0
    assert patient["structures"]["thalamus"]["reliable_change"] is True
    assert not any(
        control["structures"][name]["reliable_change"] for name in ("thalamus", "globus_pallidus")
    )


def test_listed_outputs_exist_and_validate(demo):
    run, _ = demo
    listed = dict(re.findall(r"^\s+(?:patient|control) (\w+): (\S+)$", run.stdout, re.M))
    assert {"sr", "qsm_parametric_map", "fhir_bundle", "trend_plot"} <= set(listed)
    for path in listed.values():
        assert Path(path).exists(), path
    sr = Path(listed["sr"])
    assert validator_errors(sr) == []
    assert dsrdump(sr).returncode == 0
    for instance in sorted(Path(listed["qsm_parametric_map"]).glob("*.dcm")):
        assert validator_errors(instance) == []
    bundle = json.loads(Path(listed["fhir_bundle"]).read_text())
    assert problems(validate([bundle], install_validator())) == []
