"""`qsm-monitor assess VALUES.csv`: the pipeline's assessment, reproduced from a values table."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

import pytest
from support.tracking_helpers import NORMAL_PPB, sessions_for, shifted, visit
from typer.testing import CliRunner

from dicom_node.cli import app
from monitor.norms.model import score_record
from monitor.segment.structures import SIDES, STRUCTURES
from monitor.settings import Settings
from monitor.tracking.assess import Assessment
from monitor.tracking.change import change_record
from monitor.tracking.history import record_visit
from monitor.tracking.replay import AssessedVisit
from monitor.tracking.table import assessed_lines

RUNNER = CliRunner()
SETTINGS = Settings()
COMPARED = [*score_record(None), *change_record(None)]
"""The per-structure and per-side fields the assessment computes (not the raw statistics,
which a values table does not carry)."""
HISTORY = [
    ("20200301", {}),
    ("20210301", {"thalamus": -2.0, "globus_pallidus": 1.0}),
    ("20220301", {"thalamus": -6.0, "globus_pallidus": 2.5}),
    ("20230301", {"thalamus": -9.5, "globus_pallidus": 2.0, "caudate": 3.0}),
]


def values_csv(path: Path, rows: list[tuple[str, dict[str, float]]], protocol: str = "") -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["subject_id", "visit_date", "birth_date", "sex", "structure", "side", "mean_ppb"]
            + (["protocol"] if protocol else [])
        )
        for study_date, shifts in rows:
            when = f"{study_date[:4]}-{study_date[4:6]}-{study_date[6:]}T10:00:00"
            for structure in STRUCTURES:
                value = NORMAL_PPB[structure] + shifts.get(structure, 0.0)
                for side in ("bilateral", *SIDES):
                    writer.writerow(
                        ["P-1", when, "1980-01-01", "F", structure, side, value]
                        + ([protocol] if protocol else [])
                    )
    return path


def test_assess_reproduces_the_pipeline_tracking_step(tmp_path: Path) -> None:
    sessions = sessions_for(f"sqlite:///{tmp_path / 'history.sqlite3'}")
    tracked = [
        record_visit(sessions, visit(day, shifted(**shifts)), SETTINGS) for day, shifts in HISTORY
    ]
    result = RUNNER.invoke(app, ["assess", str(values_csv(tmp_path / "v.csv", HISTORY)), "--json"])
    assert result.exit_code == 0, result.output
    assessed = json.loads(result.stdout)
    assert len(assessed) == len(tracked)
    levels = []
    for pipeline, table in zip(tracked, assessed, strict=True):
        assert table["risk"] == pipeline.fields["risk"]
        assert table["comparable"] is pipeline.fields["comparable"]
        assert table["age_years"] == pipeline.fields["age_years"]
        for structure in STRUCTURES:
            ours, theirs = table["structures"][structure], pipeline.structures[structure]
            for field in COMPARED:
                assert ours[field] == pytest.approx(theirs[field]), (structure, field)
                for side in SIDES:
                    assert ours["sides"][side][field] == pytest.approx(
                        theirs["sides"][side][field]
                    ), (structure, side, field)
        levels.append(table["risk"]["level"])
    assert levels[0] == "not elevated" and levels[-1] == "elevated"  # both outcomes compared


def test_text_output_and_protocol_change(tmp_path: Path) -> None:
    path = values_csv(tmp_path / "v.csv", HISTORY[:2], protocol="3T-A")
    other = values_csv(tmp_path / "w.csv", HISTORY[2:3], protocol="3T-B")
    path.write_text(path.read_text() + "".join(other.read_text().splitlines(True)[1:]))
    result = RUNNER.invoke(app, ["assess", str(path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "P-1 2022-03-01 (age 42.2, protocol 3T-B): risk indeterminate" in result.output
    assert "protocol 3T-B vs 3T-A" in result.output
    assert "no significant fall" in result.output  # the second visit's trend test
    assert result.output.startswith("value (z) change since the previous comparable visit")


def test_signs_of_values_that_round_to_zero_are_not_negative() -> None:
    block = {"mean_ppb": 1.0, "z": -0.04, "change_ppb": -0.03, "reliable_change": False}
    visit = AssessedVisit(
        "s1",
        datetime(2024, 1, 1),
        "",
        40.0,
        "F",
        Assessment(
            {"thalamus": block}, {"level": "not elevated", "reasons": []}, True, None, None, None
        ),
    )
    assert "  thalamus: 1.0 (+0.0) +0.0" in assessed_lines([visit])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "subject_id,visit_date,sex,structure,side,mean_ppb\n",
            "needs a birth_date or an age_years",
        ),
        (
            "subject_id,visit_date,age_years,sex,structure,side,mean_ppb\n"
            "s1,2021-13-01,40,F,thalamus,bilateral,1\n",
            "line 2: visit_date '2021-13-01' is not an ISO date",
        ),
        (
            "subject_id,visit_date,age_years,sex,structure,side,mean_ppb\n"
            "s1,2021-01-01,40,F,thalamus,middle,1\n",
            "line 2: side 'middle' is not one of",
        ),
        ("subject_id,visit_date\n", "missing column(s) sex, structure, side, mean_ppb"),
        (
            "subject_id,visit_date,age_years,sex,structure,side,mean_ppb\n"
            "s1,2021-01-01,-5,F,thalamus,bilateral,1\n",
            "line 2: age_years -5 is outside (0.0, 120.0)",
        ),
        (
            "subject_id,visit_date,birth_date,sex,structure,side,mean_ppb\n"
            "s1,2021-01-01,2022-02-02,F,thalamus,bilateral,1\n",
            "line 2: birth_date 2022-02-02 is after visit_date 2021-01-01",
        ),
    ],
)
def test_malformed_csv_is_one_line_and_exit_2(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        text if text.count("\n") > 1 else text + "s1,2021-01-01,F,thalamus,bilateral,1\n"
    )
    result = RUNNER.invoke(app, ["assess", str(path)])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1
