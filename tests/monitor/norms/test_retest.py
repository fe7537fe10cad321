"""`qsm-monitor norms retest`: site scan-rescan SD, its interval, and the settings it feeds."""

from __future__ import annotations

import csv
import json
import tomllib
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from dicom_node.cli import app
from monitor.norms.retest import RETEST_COLUMNS, RetestScan, estimate_retest_sd
from monitor.settings import load_settings
from monitor.tracking.change import VisitValue
from monitor.tracking.risk import StructureEvidence, assess_risk
from monitor.tracking.trend import trend_test

RUNNER = CliRunner()
TRUE_SD = 3.0


def scans(
    rng: np.random.Generator,
    n_subjects: int,
    structure: str = "thalamus",
    side: str = "bilateral",
    sd: float = TRUE_SD,
) -> list:
    truth = rng.normal(0.0, 7.0, n_subjects)
    repeats = rng.integers(2, 4, n_subjects)  # two or three scans each
    return [
        RetestScan(f"r{i}", structure, side, float(truth[i] + rng.normal(0.0, sd)))
        for i in range(n_subjects)
        for _ in range(repeats[i])
    ]


def write_scans(path: Path, rows: list) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(RETEST_COLUMNS)
        writer.writerows([r.subject_id, r.structure, r.side, r.mean_ppb] for r in rows)
    return path


def test_interval_covers_the_true_sd_at_its_nominal_rate() -> None:
    rng = np.random.default_rng(5)
    covered = 0
    for _ in range(400):
        (estimate,) = estimate_retest_sd(scans(rng, 12))
        covered += estimate.ci_ppb[0] <= TRUE_SD <= estimate.ci_ppb[1]
    print(f"coverage {covered / 400:.3f}")
    assert 0.92 <= covered / 400 <= 0.98  # binomial SD 1.1 %


def test_cli_prints_settings_lines_that_the_change_rule_then_uses(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    rows = scans(rng, 30) + scans(rng, 30, "globus_pallidus")
    path = write_scans(tmp_path / "retest.csv", rows)
    result = RUNNER.invoke(app, ["norms", "retest", str(path), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    thalamus = next(e for e in payload["estimates"] if e["structure"] == "thalamus")
    assert thalamus["ci_ppb"][0] <= TRUE_SD <= thalamus["ci_ppb"][1]
    assert thalamus["df"] == sum(1 for r in rows if r.structure == "thalamus") - 30
    config = tmp_path / "settings.toml"
    config.write_text("\n".join(payload["settings"]) + "\n")
    settings = load_settings(config)
    assert settings.risk.retest_sd_ppb["thalamus"] == round(thalamus["sd_ppb"], 2)
    assert settings.risk.retest_sd_ppb["caudate"] == 2.4  # no repeats: default kept
    assert tomllib.loads(config.read_text())["risk"]["retest_sd_ppb"]["putamen"] == 2.4
    sd = settings.risk.retest_sd_ppb["thalamus"]
    start = datetime(2020, 1, 1)
    visits = [VisitValue(f"v{k}", start + timedelta(days=365 * k), -2.0 * k) for k in range(2)]
    trend = trend_test(visits[:1], visits[1], sd)
    result = assess_risk({"thalamus": StructureEvidence(-2.0, None, None, trend)}, settings.risk)
    assert any(f"scan-rescan SD {sd:g} ppb" in r for r in result.reasons)


def test_side_rows_give_the_per_side_sd_left_and_right_pooled(tmp_path: Path) -> None:
    """Sides are noisier than both together; their rows set `side_retest_sd_ppb`."""
    side_sd = 1.4 * TRUE_SD
    rng = np.random.default_rng(7)
    rows = scans(rng, 30) + scans(rng, 30, side="left", sd=side_sd)
    rows += scans(rng, 30, side="right", sd=side_sd)
    path = write_scans(tmp_path / "retest.csv", rows)
    result = RUNNER.invoke(app, ["norms", "retest", str(path), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    sides = [e for e in payload["estimates"] if e["side"] != "bilateral"]
    pooled_df = sum(e["df"] for e in sides)
    pooled = (sum(e["df"] * e["sd_ppb"] ** 2 for e in sides) / pooled_df) ** 0.5
    config = tmp_path / "settings.toml"
    config.write_text("\n".join(payload["settings"]) + "\n")
    risk = load_settings(config).risk
    assert risk.side_retest_sd_ppb == {"thalamus": round(pooled, 2)}
    assert abs(pooled - side_sd) < 0.25 * side_sd  # ~100 df: the SD within ~15 % (2 SE)
    assert risk.side_retest_sd("caudate") == 2.4 * 2**0.5  # no side repeats: the default
    assert not any("side SD below the bilateral" in line for line in payload["settings"])
    quiet_sides = scans(rng, 30) + scans(rng, 30, side="left", sd=0.5 * TRUE_SD)
    path = write_scans(tmp_path / "quiet.csv", quiet_sides)
    lines = json.loads(RUNNER.invoke(app, ["norms", "retest", str(path), "--json"]).stdout)[
        "settings"
    ]
    assert any("side SD below the bilateral one for thalamus" in line for line in lines)
    only_bilateral = write_scans(tmp_path / "bilateral.csv", scans(rng, 30))
    lines = json.loads(
        RUNNER.invoke(app, ["norms", "retest", str(only_bilateral), "--json"]).stdout
    )["settings"]
    assert not any(line.startswith("side_retest_sd_ppb") for line in lines)


def test_repeats_that_never_differ_do_not_become_a_zero_sd(tmp_path: Path) -> None:
    """Identical repeats (the same scan listed twice) give SD 0, which would make every
    difference a change: the current value is kept and a comment says why."""
    rng = np.random.default_rng(8)
    twice = [
        RetestScan(f"c{i}", "caudate", "bilateral", float(v))
        for i, v in enumerate(rng.normal(60.0, 7.0, 12))
        for _ in range(2)
    ]
    twice += [RetestScan(s.subject_id, s.structure, "left", s.mean_ppb) for s in twice]
    path = write_scans(tmp_path / "retest.csv", scans(rng, 20) + twice)
    result = RUNNER.invoke(app, ["norms", "retest", str(path), "--json"])
    lines = json.loads(result.stdout)["settings"]
    config = tmp_path / "settings.toml"
    config.write_text("\n".join(lines) + "\n")
    risk = load_settings(config).risk
    assert risk.retest_sd_ppb["caudate"] == 2.4
    assert risk.side_retest_sd_ppb == {}
    assert any("no usable bilateral repeats for caudate" in line for line in lines)
    assert any("no scan-rescan difference" in line for line in lines)


def test_malformed_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("subject_id,structure,side,mean_ppb\nr1,thalamus,bilateral,abc\n")
    result = RUNNER.invoke(app, ["norms", "retest", str(path)])
    assert result.exit_code == 2
    assert "line 2: mean_ppb 'abc' is not a number" in result.output
    single = tmp_path / "single.csv"
    single.write_text("subject_id,structure,side,mean_ppb\nr1,thalamus,bilateral,1\n")
    result = RUNNER.invoke(app, ["norms", "retest", str(single)])
    assert result.exit_code == 2 and "no subject has two scans" in result.output
