"""Patient history: identity conflicts, comparability, back-filled visits, re-processing."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import func, select
from support.tracking_helpers import FINGERPRINT, sessions_for, shifted, visit

from monitor.settings import Settings, TrackingSettings
from monitor.tracking.history import record_visit
from monitor.tracking.tables import Acquisition, Measurement, Patient, Visit

SETTINGS = Settings()


@pytest.fixture
def sessions(db_url: str):
    return sessions_for(db_url)


def test_baseline_then_reliable_decline_is_elevated(sessions) -> None:
    first = record_visit(sessions, visit("20240301"), SETTINGS)
    assert first.fields["risk"]["level"] == "not elevated"
    assert first.fields["previous_study_uid"] is None and first.fields["comparable"] is True
    assert first.structures["thalamus"]["change_ppb"] is None
    assert first.fields["age_years"] == pytest.approx(44.16, abs=0.01)

    later = visit("20250301", shifted(thalamus=-12.0))
    second = record_visit(sessions, later, SETTINGS)
    thalamus = second.structures["thalamus"]
    assert thalamus["change_ppb"] == pytest.approx(-12.0)
    assert thalamus["reliable_change"] is True
    assert thalamus["sides"]["left"]["change_ppb"] == pytest.approx(-12.0)
    assert thalamus["sides"]["right"]["voxel_count"] == 500
    assert second.structures["putamen"]["reliable_change"] is False
    assert second.fields["previous_study_uid"] == visit("20240301").study_uid
    assert second.fields["risk"]["level"] == "elevated"
    assert any("is falling" in reason for reason in second.fields["risk"]["reasons"])


def test_same_id_with_other_birth_date_is_held_for_review(sessions) -> None:
    record_visit(sessions, visit("20240301"), SETTINGS)
    other = visit("20250301", shifted(thalamus=-30.0), birth_date="19790101")
    held = record_visit(sessions, other, SETTINGS)
    assert held.fields["identity_status"] == "needs_review"
    assert held.fields["risk"]["level"] == "indeterminate"
    assert "birth date" in held.fields["risk"]["reasons"][0]
    assert held.fields["comparable"] is False and held.fields["previous_study_uid"] is None
    assert held.structures["thalamus"]["change_ppb"] is None  # never merged into the trend
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Patient)) == 1
        statuses = dict(session.execute(select(Visit.study_uid, Visit.identity_status)).all())
    assert statuses[other.study_uid] == "needs_review"
    # the held visit does not become anyone's previous visit either
    third = record_visit(sessions, visit("20260301"), SETTINGS)
    assert third.fields["previous_study_uid"] == visit("20240301").study_uid


def test_other_sex_is_a_conflict_but_a_missing_value_is_not(sessions) -> None:
    record_visit(sessions, visit("20240301", sex=""), SETTINGS)
    assert record_visit(sessions, visit("20250301"), SETTINGS).fields["identity_status"] == (
        "confirmed"
    )
    conflict = record_visit(sessions, visit("20260301", sex="M"), SETTINGS)
    assert conflict.fields["identity_status"] == "needs_review"
    assert "sex" in conflict.fields["risk"]["reasons"][0]


def test_identifier_rule_and_required_issuer(sessions) -> None:
    upper = Settings(tracking=TrackingSettings(identifier_rule="strip_upper"))
    record_visit(sessions, visit("20240301", patient_id=" ab-7 "), upper)
    second = record_visit(sessions, visit("20250301", patient_id="AB-7"), upper)
    assert second.fields["previous_study_uid"] is not None

    strict = Settings(tracking=TrackingSettings(issuer_required=True))
    untracked = record_visit(sessions, visit("20250301", patient_id="Q-2"), strict)
    assert untracked.fields["identity_status"] == "untracked"
    assert untracked.fields["risk"]["level"] == "indeterminate"
    assert "Issuer of Patient ID" in untracked.fields["risk"]["reasons"][0]
    assert untracked.structures["thalamus"]["z"] is not None  # own scores still reported
    with sessions() as session:
        identifiers = set(session.scalars(select(Patient.identifier)))
    assert identifiers == {"AB-7"}


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"field_strength_t": 1.5}, "field strength 1.5 T vs 3 T"),
        ({"echo_times_ms": (5.0, 12.0, 19.0)}, "echo times"),
        ({"voxel_mm": (0.7, 0.7, 1.0)}, "voxel size"),
        ({"pipeline_version": "1.0.0"}, "pipeline version 1.0.0 vs 0.1.0"),
        ({"reference_region": "csf"}, "reference region"),
    ],
)
def test_incompatible_protocol_is_shown_but_not_compared(sessions, change, why) -> None:
    record_visit(sessions, visit("20240301"), SETTINGS)
    other = visit("20250301", shifted(thalamus=-20.0), fingerprint=replace(FINGERPRINT, **change))
    result = record_visit(sessions, other, SETTINGS)
    assert result.fields["comparable"] is False
    assert why in result.fields["not_comparable_reason"]
    assert result.structures["thalamus"]["change_ppb"] is None
    assert result.structures["thalamus"]["mean_ppb"] == pytest.approx(-21.0)
    assert result.fields["risk"]["level"] != "not elevated"
    assert any("not comparable" in reason for reason in result.fields["risk"]["reasons"])


def test_small_protocol_differences_within_tolerance_compare(sessions) -> None:
    record_visit(sessions, visit("20240301"), SETTINGS)
    siemens = replace(FINGERPRINT, field_strength_t=2.89, echo_times_ms=(4.1, 10.2, 16.0))
    result = record_visit(sessions, visit("20250301", fingerprint=siemens), SETTINGS)
    assert result.fields["comparable"] is True
    assert result.structures["caudate"]["change_ppb"] == pytest.approx(0.0)


def test_back_filled_prior_visit_reassesses_the_later_ones(sessions) -> None:
    record_visit(sessions, visit("20250301", shifted(globus_pallidus=6.0)), SETTINGS)
    later = record_visit(sessions, visit("20260301", shifted(globus_pallidus=12.0)), SETTINGS)
    assert later.structures["globus_pallidus"]["change_from_baseline_ppb"] == pytest.approx(6.0)

    prior = visit("20240301")  # arrives last, was acquired first
    backfilled = record_visit(sessions, prior, SETTINGS)
    assert backfilled.fields["previous_study_uid"] is None  # it is the new baseline
    assert set(backfilled.reassessed_study_uids) == {
        visit("20250301").study_uid,
        visit("20260301").study_uid,
    }
    newest = record_visit(sessions, visit("20260301", shifted(globus_pallidus=12.0)), SETTINGS)
    pallidus = newest.structures["globus_pallidus"]
    assert newest.fields["baseline_study_uid"] == prior.study_uid
    assert pallidus["change_from_baseline_ppb"] == pytest.approx(12.0)
    assert pallidus["annual_change_ppb_per_year"] == pytest.approx(6.0, abs=0.05)
    assert pallidus["reliable_change_from_baseline"] is True


def test_reprocessing_updates_in_place_and_restores_comparability(sessions) -> None:
    old = visit("20240301")
    record_visit(sessions, old, SETTINGS)
    upgraded = replace(FINGERPRINT, pipeline_version="1.0.0")
    new = record_visit(
        sessions, visit("20250301", shifted(thalamus=-12.0), fingerprint=upgraded), SETTINGS
    )
    assert new.fields["comparable"] is False

    rerun = record_visit(sessions, replace(old, fingerprint=upgraded), SETTINGS)
    assert rerun.reassessed_study_uids == (visit("20250301").study_uid,)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Acquisition)) == 2
        assert session.scalar(select(func.count()).select_from(Measurement)) == 2 * 4 * 3
        versions = set(session.scalars(select(Acquisition.pipeline_version)))
    assert versions == {"1.0.0"}
    again = record_visit(
        sessions, visit("20250301", shifted(thalamus=-12.0), fingerprint=upgraded), SETTINGS
    )
    assert again.fields["comparable"] is True
    assert again.structures["thalamus"]["change_ppb"] == pytest.approx(-12.0)


def test_failed_quality_control_is_indeterminate_and_skipped_as_prior(sessions) -> None:
    record_visit(sessions, visit("20240301"), SETTINGS)
    failed = visit("20250301", structures={}, qc_failure="registration failed")
    result = record_visit(sessions, failed, SETTINGS)
    assert result.fields["risk"]["level"] == "indeterminate"
    assert "registration failed" in result.fields["risk"]["reasons"][0]
    assert result.structures == {}
    after = record_visit(sessions, visit("20260301"), SETTINGS)
    assert after.fields["previous_study_uid"] == visit("20240301").study_uid
