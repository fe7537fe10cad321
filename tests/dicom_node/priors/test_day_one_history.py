"""Day-one history through to the amended report, against a real Orthanc (slow).

A node with an empty history receives a patient's newest visit; Orthanc holds that patient's
three earlier visits and another patient's. The node reports the newest visit, fetches the
priors (C-MOVE to itself), processes them as back-filled visits and amends the newest report:
its last version compares with the previous visit (2025) and the baseline (2023), carries
changes and reliable-change verdicts, and is marked as an amendment with its SR re-issued.
The other patient is never retrieved. `benchmarks/priors_amendment.py` prints the timings.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.day_one_priors import EARLIER, NEWEST, DayOne, run_day_one
from support.node_peers import ORTHANC

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not ORTHANC.exists(), reason="Orthanc (Debian package) not installed"),
]


@pytest.fixture(scope="module")
def day_one(tmp_path_factory: pytest.TempPathFactory) -> DayOne:
    return run_day_one(Path(tmp_path_factory.mktemp("day-one")), timeout_s=1200.0)


def test_history_ends_with_four_visits_and_nothing_else(day_one: DayOne) -> None:
    expected = {identity.study_uid for identity in (*EARLIER, NEWEST)}
    assert day_one.processed_studies == expected


def test_newest_report_is_first_issued_without_history_then_amended(day_one: DayOne) -> None:
    first, *_, last = day_one.newest_records
    assert first["previous_study_uid"] is None
    assert not first.get("amendment")
    assert last["amendment"] >= 1
    assert last["previous_study_uid"] == EARLIER[2].study_uid
    assert last["baseline_study_uid"] == EARLIER[0].study_uid
    assert Path(last["outputs"]["sr"]).exists()
    assert last["outputs"]["sr"] != first["outputs"]["sr"]


def test_amended_values_carry_change_against_the_previous_visit(day_one: DayOne) -> None:
    last = day_one.newest_records[-1]
    thalamus = last["structures"]["thalamus"]
    assert thalamus["change_ppb"] is not None
    assert isinstance(thalamus["reliable_change"], bool)
    assert day_one.marks["amended with all three priors"] > 0
