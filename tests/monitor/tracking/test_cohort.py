"""The longitudinal phantom cohort: identities, yearly dates and the structures' true course."""

from __future__ import annotations

from datetime import date

import pytest

from monitor.phantom.anatomy import DEFAULT_PROPERTIES
from monitor.phantom.cohort import (
    PALLIDUS_PPB_PER_YEAR,
    PATIENT_THALAMUS_OFFSET_PPB,
    THALAMUS_PPB_PER_YEAR,
    longitudinal_cohort,
    ms_patient,
    stable_control,
    subject_visits,
)
from monitor.settings import Settings
from monitor.tracking.change import reliable_limit_ppb


def test_patient_thalamus_falls_and_pallidus_rises_every_year() -> None:
    visits = ms_patient(4)
    thalamus = [v.true_chi_ppb["thalamus"] for v in visits]
    pallidus = [v.true_chi_ppb["globus_pallidus"] for v in visits]
    steps = [b - a for a, b in zip(thalamus, thalamus[1:], strict=False)]
    assert steps == pytest.approx([THALAMUS_PPB_PER_YEAR] * 3)
    rises = [b - a for a, b in zip(pallidus, pallidus[1:], strict=False)]
    assert rises == pytest.approx([PALLIDUS_PPB_PER_YEAR] * 3)
    risk = Settings().risk
    limit = max(
        reliable_limit_ppb(sd, risk.reliable_change_factor) for sd in risk.retest_sd_ppb.values()
    )
    assert all(abs(step) > limit for step in steps + rises)  # nominal steps beyond the limit
    assert len({v.true_chi_ppb["putamen"] for v in visits}) == 1
    default_ppb = DEFAULT_PROPERTIES.chi_ppm["thalamus"] * 1000
    assert thalamus[0] == pytest.approx(default_ppb + PATIENT_THALAMUS_OFFSET_PPB)
    assert thalamus[1] == pytest.approx(default_ppb)  # three visits centred on the default


def test_phantom_configs_carry_the_true_values_on_both_sides() -> None:
    last = ms_patient(3)[-1]
    for structure, value_ppb in last.true_chi_ppb.items():
        for side in ("left", "right"):
            assert last.config.structure_chi_ppm[f"{structure}_{side}"] * 1000 == pytest.approx(
                value_ppb
            )


def test_control_is_stable_and_distinct_from_the_patient() -> None:
    control = stable_control(2)
    assert control[0].true_chi_ppb == control[1].true_chi_ppb
    assert control[0].true_chi_ppb["thalamus"] == pytest.approx(
        DEFAULT_PROPERTIES.chi_ppm["thalamus"] * 1000
    )
    assert control[0].noise_seed != control[1].noise_seed
    patient_ids = {v.identity.patient_id for v in ms_patient(3)}
    assert patient_ids.isdisjoint({v.identity.patient_id for v in control})


def test_visits_are_yearly_with_stable_unique_study_uids() -> None:
    cohort = longitudinal_cohort(3, 2)
    assert [v.subject for v in cohort] == ["patient"] * 3 + ["control"] * 2
    dates = [date.fromisoformat(v.identity.study_date) for v in cohort[:3]]
    assert [d.year - dates[0].year for d in dates] == [0, 1, 2]
    assert {(d.month, d.day) for d in dates} == {(dates[0].month, dates[0].day)}
    uids = [v.identity.study_uid for v in cohort]
    assert len(set(uids)) == 5
    assert all(uid.startswith("2.25.") and len(uid) <= 64 for uid in uids)
    assert uids == [v.identity.study_uid for v in longitudinal_cohort(3, 2)]  # reproducible


def test_identity_fields_build_a_dicom_identity() -> None:
    from dataclasses import asdict

    from dicom_node.synthetic.modules import PatientIdentity

    visit = stable_control(1)[0]
    identity = PatientIdentity(**asdict(visit.identity))
    assert identity.birth_date == "19680930" and identity.sex == "M"


def test_unknown_structure_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown structures"):
        subject_visits("x", "ID", date(1970, 1, 1), "F", date(2024, 1, 1), 2, {"cortex": 5.0})
