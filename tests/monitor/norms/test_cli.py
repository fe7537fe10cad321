"""`qsm-monitor norms fit` / `norms show` through the real entry point."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dicom_node.cli import app
from monitor.norms import default_model, load_model
from monitor.norms.controls_csv import REQUIRED_COLUMNS
from monitor.phantom.norms_cohort import simulate_cohort

RUNNER = CliRunner()


def write_controls(path: Path, n_subjects: int, seed: int = 3) -> Path:
    rows = simulate_cohort(
        default_model(),
        n_subjects,
        np.random.default_rng(seed),
        structures=("thalamus", "globus_pallidus"),
    )
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(REQUIRED_COLUMNS)
        for r in rows:
            writer.writerow([r.subject_id, r.age_years, r.sex, r.structure, r.side, r.mean_ppb])
    return path


def test_fit_writes_a_site_model_and_show_prints_it(tmp_path: Path) -> None:
    controls = write_controls(tmp_path / "controls.csv", 60)
    out = tmp_path / "site-norms.json"
    result = RUNNER.invoke(
        app, ["norms", "fit", str(controls), "--out", str(out), "--bootstrap", "20"]
    )
    assert result.exit_code == 0, result.output
    model = load_model(out)
    assert model.source == "site"
    assert set(model.curves) == {("thalamus", "bilateral"), ("globus_pallidus", "bilateral")}
    curve = model.curve("thalamus")
    assert curve.n_controls == 60 and sum(curve.age_band_counts.values()) == 60
    assert all(low <= curve.params[name] <= high for name, (low, high) in curve.ci.items())
    assert "controls aged" in result.output  # 60 controls over 55 years: thin bands are named
    shown = RUNNER.invoke(app, ["norms", "show", "--model", str(out)], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "globus_pallidus" in shown.output and "controls per age band" in shown.output
    as_json = RUNNER.invoke(app, ["norms", "show", "--model", str(out), "--json"])
    assert json.loads(as_json.stdout) == json.loads(out.read_text())


def test_show_defaults_to_the_shipped_model() -> None:
    result = RUNNER.invoke(app, ["norms", "show"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert default_model().name in result.output
    assert "Protocol- and pipeline-dependent" in result.output


@pytest.mark.parametrize(
    ("line_index", "column", "text", "message"),
    [
        (2, "age_years", "old", "line 3: age_years 'old' is not a number"),
        (3, "structure", "amygdala", "line 4: structure 'amygdala' is not one of"),
        (4, "side", "middle", "line 5: side 'middle' is not one of"),
        (5, "sex", "X", "line 6: sex 'X' must be F, M, O or empty"),
        (6, "mean_ppb", "nan", "line 7: mean_ppb 'nan' is not a finite number"),
        (0, "mean_ppb", "value", "missing column(s) mean_ppb"),
        (3, "subject_id", "c0000", "line 4: subject c0000 already has a thalamus"),
    ],
)
def test_bad_controls_csv_is_rejected_naming_the_line(
    tmp_path: Path, line_index: int, column: str, text: str, message: str
) -> None:
    controls = write_controls(tmp_path / "controls.csv", 30)
    lines = controls.read_text().splitlines()
    fields = lines[line_index].split(",")
    fields[REQUIRED_COLUMNS.index(column)] = text
    lines[line_index] = ",".join(fields)
    controls.write_text("\n".join(lines) + "\n")
    out = tmp_path / "site.json"
    result = RUNNER.invoke(app, ["norms", "fit", str(controls), "--out", str(out)])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert not out.exists()


def test_too_few_controls_for_a_curve_is_an_input_error(tmp_path: Path) -> None:
    controls = write_controls(tmp_path / "controls.csv", 12)
    result = RUNNER.invoke(app, ["norms", "fit", str(controls), "--out", str(tmp_path / "m.json")])
    assert result.exit_code == 2
    assert "at least 20 are needed" in result.output


def test_show_reports_a_broken_model_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x", "source": "site"}))
    result = RUNNER.invoke(app, ["norms", "show", "--model", str(bad)])
    assert result.exit_code == 2
    assert "lacks 'curves'" in result.output
    bad.write_text("[1, 2]")
    result = RUNNER.invoke(app, ["norms", "show", "--model", str(bad)])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: not a normative model: expected a JSON object with name, source and curves "
        "(as `qsm-monitor norms fit` writes)"
    )


def test_a_folder_given_for_a_csv_is_one_line(tmp_path: Path) -> None:
    for command in (["norms", "retest"], ["assess"], ["norms", "fit", "--out", "m.json"]):
        result = RUNNER.invoke(app, [*command[:2], str(tmp_path), *command[2:]])
        assert result.exit_code == 2, (command, result.output)
        assert result.output.strip().endswith("CSV file"), result.output
        assert f"{tmp_path} is a folder" in result.output


def test_show_uses_the_configured_site_model(tmp_path: Path) -> None:
    site = default_model().to_json()
    site.update(name="configured-site-model", source="site")
    model_path = tmp_path / "site.json"
    model_path.write_text(json.dumps(site))
    config = tmp_path / "qsm.toml"
    config.write_text(f'[norms]\nmodel_path = "{model_path.as_posix()}"\n')
    result = RUNNER.invoke(app, ["norms", "show", "--config", str(config)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "configured-site-model" in result.output


def test_norms_show_fits_an_80_column_terminal_without_eliding():
    from typer.testing import CliRunner as Runner

    from dicom_node.cli import app as cli

    result = Runner(env={"COLUMNS": "80"}).invoke(cli, ["norms", "show"])

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in result.stdout
    assert any(line.startswith("globus_pallidus bilateral saturating") for line in lines)
