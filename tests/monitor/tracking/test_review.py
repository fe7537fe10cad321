"""Identity review: a held visit joins the trend, stays out for good, or corrects the record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from support.tracking_helpers import sessions_for, shifted, visit
from typer.testing import CliRunner

from dicom_node.cli import app
from dicom_node.db import create_schema
from dicom_node.queue.jobs import Job
from dicom_node.queue.results import add_result_once
from monitor.db import configured_engine
from monitor.settings import Settings, load_settings
from monitor.tracking.history import record_visit
from monitor.tracking.review import ReviewError, resolve_identity, review_items
from monitor.tracking.schema import history_sessions
from monitor.tracking.tables import Visit

SETTINGS = Settings()
FIRST = visit("20240301")
TYPO = visit("20250301", shifted(thalamus=-12.0), birth_date="19800110")
LATER = visit("20260301", shifted(thalamus=-13.0))


@pytest.fixture
def sessions(db_url: str):
    """P-1 with a baseline and a later visit held because its birth date has a typo."""
    made = sessions_for(db_url)
    record_visit(made, FIRST, SETTINGS)
    assert record_visit(made, TYPO, SETTINGS).fields["identity_status"] == "needs_review"
    return made


def statuses(sessions) -> dict[str, str]:
    with sessions() as session:
        return dict(session.execute(select(Visit.study_uid, Visit.identity_status)).all())


def test_waiting_visit_is_listed_with_both_birth_dates(sessions) -> None:
    [item] = review_items(sessions)
    assert item.study_uid == TYPO.study_uid and item.status == "needs_review"
    assert (str(item.visit_birth_date), str(item.patient_birth_date)) == (
        "1980-01-10",
        "1980-01-01",
    )
    assert "birth date" in (item.reason or "")


def test_same_person_joins_the_trend_and_survives_reprocessing(sessions) -> None:
    item, changed = resolve_identity(sessions, TYPO.study_uid, "same_person", "Dr A", SETTINGS)
    assert item.status == "confirmed" and item.reviewer == "Dr A" and item.reviewed_at
    assert changed == [TYPO.study_uid]
    assert review_items(sessions) == []
    assert [i.study_uid for i in review_items(sessions, include_decided=True)] == [TYPO.study_uid]

    again = record_visit(sessions, TYPO, SETTINGS)  # e.g. re-processed with a new pipeline
    assert again.fields["identity_status"] == "confirmed"
    assert again.fields["previous_study_uid"] == FIRST.study_uid
    assert again.structures["thalamus"]["change_ppb"] == pytest.approx(-12.0)
    assert again.fields["age_years"] == pytest.approx(45.16, abs=0.01)  # record's birth date
    later = record_visit(sessions, LATER, SETTINGS)
    assert later.fields["previous_study_uid"] == TYPO.study_uid


def test_different_person_stays_out_of_the_trend(sessions) -> None:
    item, _ = resolve_identity(sessions, TYPO.study_uid, "different_person", "Dr B", SETTINGS)
    assert item.status == "separated"
    assert record_visit(sessions, TYPO, SETTINGS).fields["identity_status"] == "separated"
    later = record_visit(sessions, LATER, SETTINGS)
    assert later.fields["previous_study_uid"] == FIRST.study_uid
    assert statuses(sessions)[TYPO.study_uid] == "separated"
    assert review_items(sessions) == []


def test_update_patient_corrects_the_record_and_keeps_earlier_visits(sessions) -> None:
    item, _ = resolve_identity(
        sessions, TYPO.study_uid, "same_person", "Dr C", SETTINGS, update_patient=True
    )
    assert str(item.patient_birth_date) == "1980-01-10"
    # the baseline's header carries the old value: re-processing it must not hold it
    assert record_visit(sessions, FIRST, SETTINGS).fields["identity_status"] == "confirmed"
    assert statuses(sessions) == {FIRST.study_uid: "confirmed", TYPO.study_uid: "confirmed"}
    decided = {i.study_uid: i.reviewer for i in review_items(sessions, include_decided=True)}
    assert decided == {FIRST.study_uid: "Dr C", TYPO.study_uid: "Dr C"}
    # and a new visit with the corrected birth date is not a conflict
    assert record_visit(sessions, visit("20260301", birth_date="19800110"), SETTINGS).fields[
        "identity_status"
    ] == ("confirmed")


@pytest.mark.parametrize(
    ("uid", "decision", "reviewer", "update", "message"),
    [
        ("1.2.3.4", "same_person", "Dr A", False, "no visit"),
        (TYPO.study_uid, "merge", "Dr A", False, "decision must be"),
        (TYPO.study_uid, "same_person", " ", False, "name the reviewer"),
        (TYPO.study_uid, "different_person", "Dr A", True, "can only be taken"),
    ],
)
def test_bad_decisions_change_nothing(sessions, uid, decision, reviewer, update, message) -> None:
    with pytest.raises(ReviewError, match=message):
        resolve_identity(sessions, uid, decision, reviewer, SETTINGS, update_patient=update)
    assert statuses(sessions)[TYPO.study_uid] == "needs_review"


def test_identity_commands(db_url: str, tmp_path: Path) -> None:
    config = tmp_path / "qsm-monitor.toml"
    storage = f'data_dir = "{tmp_path / "data"}"\ndatabase_url = "{db_url}"\n'
    config.write_text(f"[storage]\n{storage}")
    settings = load_settings(config)
    made = history_sessions(configured_engine(settings.storage))
    record_visit(made, FIRST, settings)
    held = record_visit(made, TYPO, settings)
    node = create_schema(configured_engine(settings.storage))
    with node.begin() as session:  # the held visit was reported by the node as indeterminate
        record = {"idempotency_key": TYPO.idempotency_key, "study_uid": TYPO.study_uid}
        record |= {"structures": held.structures, **held.fields, "error": None}
        add_result_once(session, TYPO.idempotency_key, TYPO.study_uid, record)
    runner = CliRunner()

    listed = runner.invoke(app, ["identity", "list", "--config", str(config)])
    assert listed.exit_code == 0, listed.output
    assert TYPO.study_uid in listed.stdout.splitlines()
    assert "birth date visit 1980-01-10 / record 1980-01-01" in listed.stdout

    args = ["identity", "resolve", TYPO.study_uid, "--config", str(config), "--by", "Dr A"]
    refused = runner.invoke(app, [*args, "--decision", "unsure"])
    assert refused.exit_code == 2 and "decision must be" in refused.stderr
    resolved = runner.invoke(app, [*args, "--decision", "same_person", "--json"])
    assert resolved.exit_code == 0, resolved.output
    assert json.loads(resolved.stdout) == {
        "study_uid": TYPO.study_uid,
        "status": "confirmed",
        "reviewer": "Dr A",
        "reassessed": 1,
        "amendments_queued": 1,
    }
    with node() as session:
        (job,) = session.scalars(select(Job)).all()
    assert job.idempotency_key.startswith(f"amend:{TYPO.idempotency_key}:")
    assert job.payload == {"amend": TYPO.idempotency_key}

    empty = runner.invoke(app, ["identity", "list", "--config", str(config)])
    assert "no visits waiting" in empty.stdout
    decided = runner.invoke(app, ["identity", "list", "--all", "--json", "--config", str(config)])
    [entry] = json.loads(decided.stdout)
    assert entry["review"] == "same_person" and entry["reviewer"] == "Dr A"
    timeline = runner.invoke(app, ["patient", "P-1", "--json", "--config", str(config)])
    entries = json.loads(timeline.stdout)["entries"]
    assert entries[1]["structures"]["thalamus"]["change_ppb"] == pytest.approx(-12.0)
