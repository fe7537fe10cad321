"""Risk levels and their plain-language reasons for constructed cases."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from monitor.norms import default_model
from monitor.settings import ConfigError, RiskSettings, load_settings
from monitor.tracking.change import VisitValue, compute_change
from monitor.tracking.risk import RiskAssessment, StructureEvidence, assess_risk
from monitor.tracking.trend import trend_test

AGE = 50.0
MODEL = default_model()
RISK = RiskSettings()


def evidence(structure: str, z: float, change_ppb: float | None = None) -> StructureEvidence:
    """A measurement at ``z`` SDs from the age norm; optionally ``change_ppb`` over a year."""
    curve = MODEL.curve(structure)
    value = curve.mean_ppb(AGE) + z * curve.sd_ppb(AGE)
    change = trend = None
    if change_ppb is not None:
        before = VisitValue("prior", datetime(2024, 1, 1), value - change_ppb)
        now = VisitValue("now", datetime(2024, 1, 1) + timedelta(days=365), value)
        change = compute_change([before], now, RISK.retest_sd_ppb[structure])
        trend = trend_test([before], now, RISK.retest_sd_ppb[structure])
    score = MODEL.score(structure, "bilateral", value, AGE)
    return StructureEvidence(value, score, change, trend)


def assess(thalamus: StructureEvidence, pallidus: StructureEvidence, **kwargs):
    return assess_risk(
        {"thalamus": thalamus, "globus_pallidus": pallidus}, RISK, age_years=AGE, **kwargs
    )


def test_normal_values_without_change_are_not_elevated() -> None:
    result = assess(evidence("thalamus", 0.0, 1.0), evidence("globus_pallidus", 0.5, -1.0))
    assert result.level == "not elevated"
    text = " ".join(result.reasons)
    assert "z = 0.00" in text and "z = 0.50" in text
    assert "no significant fall" in text and "no significant rise" in text
    assert "not a diagnosis" in result.reasons[-1]


def test_low_thalamus_z_is_elevated_and_names_the_numbers() -> None:
    result = assess(evidence("thalamus", -3.3), evidence("globus_pallidus", 0.0))
    assert result.level == "elevated"
    assert result.reasons[0].startswith("Thalamus susceptibility")
    assert "z = -3.30" in result.reasons[0] and "z <= -3" in result.reasons[0]


def test_z_between_2_and_3_no_longer_fires_alone() -> None:
    """The z threshold moved from 2 to 3 so that the rules share a 5 % per-visit budget."""
    result = assess(evidence("thalamus", -2.5), evidence("globus_pallidus", 2.5))
    assert result.level == "not elevated"


def test_high_pallidus_z_is_elevated() -> None:
    result = assess(evidence("thalamus", 0.0), evidence("globus_pallidus", 3.1))
    assert result.level == "elevated"
    assert any("Globus pallidus" in r and "z = 3.10" in r for r in result.reasons)


def test_reliable_thalamic_fall_is_elevated_even_with_normal_z() -> None:
    result = assess(evidence("thalamus", -1.0, change_ppb=-8.0), evidence("globus_pallidus", 0.0))
    assert result.level == "elevated"
    assert any(
        "is falling" in r and "-8.0 ppb/year" in r and "limit z -1.88" in r and "3 %" in r
        for r in result.reasons
    )


def test_reliable_change_against_the_rule_direction_does_not_fire() -> None:
    result = assess(
        evidence("thalamus", 0.0, change_ppb=8.0), evidence("globus_pallidus", 0.0, -9.0)
    )
    assert result.level == "not elevated"


def test_reliable_pallidal_rise_is_elevated() -> None:
    result = assess(evidence("thalamus", 0.0), evidence("globus_pallidus", 1.0, change_ppb=9.0))
    assert result.level == "elevated"
    assert any("is rising" in r and "+9.0 ppb/year" in r for r in result.reasons)


def test_qc_failure_is_indeterminate_whatever_the_values() -> None:
    result = assess(
        evidence("thalamus", -4.0),
        evidence("globus_pallidus", 4.0),
        qc_failures=["brain mask too small"],
    )
    assert result.level == "indeterminate"
    assert "brain mask too small" in result.reasons[0]


def test_not_comparable_normal_visit_is_indeterminate() -> None:
    result = assess(
        evidence("thalamus", 0.0),
        evidence("globus_pallidus", 0.0),
        not_comparable_reason="field strength 1.5 T vs 3 T",
    )
    assert result.level == "indeterminate"
    assert any("1.5 T vs 3 T" in r for r in result.reasons)


def test_not_comparable_but_abnormal_z_is_still_elevated() -> None:
    result = assess(
        evidence("thalamus", -3.5),
        evidence("globus_pallidus", 0.0),
        not_comparable_reason="echo times differ",
    )
    assert result.level == "elevated"


def test_no_norms_for_the_age_is_indeterminate() -> None:
    young = 12.0
    value = -1.0
    no_norms = StructureEvidence(value, MODEL.score("thalamus", "bilateral", value, young), None)
    assert no_norms.score is None
    result = assess_risk(
        {"thalamus": no_norms, "globus_pallidus": evidence("globus_pallidus", 0.0)},
        RISK,
        age_years=young,
    )
    assert result.level == "indeterminate"
    assert any("age 12 years" in r for r in result.reasons)


def test_missing_structure_is_indeterminate() -> None:
    result = assess_risk({"thalamus": evidence("thalamus", 0.0)}, RISK, age_years=AGE)
    assert result.level == "indeterminate"
    assert any("No globus pallidus measurement" in r for r in result.reasons)


@pytest.mark.parametrize("threshold", [-1.5, -3.0])
def test_rules_come_from_settings(threshold: float) -> None:
    settings = RiskSettings(
        rules=[{"structure": "thalamus", "direction": "low", "z_threshold": threshold}]
    )
    result = assess_risk({"thalamus": evidence("thalamus", -2.0)}, settings, age_years=AGE)
    assert result.level == ("elevated" if threshold >= -2.0 else "not elevated")
    assert result.as_record()["level"] == result.level


def test_every_structure_needs_a_positive_retest_sd() -> None:
    for bad in (0.0, 0.05, float("inf"), True, "2.4"):
        with pytest.raises(ConfigError, match="risk.retest_sd_ppb.thalamus"):
            load_settings(None, risk={"retest_sd_ppb": {**RISK.retest_sd_ppb, "thalamus": bad}})
    partial = {"thalamus": 2.0, "globus_pallidus": 2.0}
    with pytest.raises(ConfigError, match="retest_sd_ppb needs a positive value for caudate"):
        load_settings(None, risk={"retest_sd_ppb": partial})


@pytest.mark.parametrize(("direction", "threshold"), [("low", 3.0), ("high", -3.0), ("low", 0.0)])
def test_a_threshold_against_its_direction_is_refused(direction: str, threshold: float) -> None:
    """A "low" rule at z +3 would call nearly everyone elevated (z <= 3)."""
    rule = {"structure": "thalamus", "direction": direction, "z_threshold": threshold}
    with pytest.raises(ConfigError, match="z_threshold must be"):
        load_settings(None, risk={"rules": [rule]})


def test_no_rules_is_refused() -> None:
    with pytest.raises(ConfigError, match="risk.rules"):
        load_settings(None, risk={"rules": []})


def test_slow_decline_no_pair_flags_fires_on_the_trend_at_the_third_visit() -> None:
    limit = 1.96 * 2**0.5 * RISK.retest_sd_ppb["thalamus"]
    step = -0.6 * limit  # never reliable from one visit to the next
    start = datetime(2021, 1, 1)
    visits = [
        VisitValue(f"v{k}", start + timedelta(days=365 * k), -1.0 + k * step) for k in range(3)
    ]
    pallidus = evidence("globus_pallidus", 0.0)

    def at(n: int) -> RiskAssessment:
        sd = RISK.retest_sd_ppb["thalamus"]
        value = visits[n - 1].value_ppb
        change = compute_change(visits[: n - 1], visits[n - 1], sd)
        assert change.reliable_change is False  # the pairwise index never fires
        score = MODEL.score("thalamus", "bilateral", value, AGE)
        trend = trend_test(visits[: n - 1], visits[n - 1], sd)
        return assess(StructureEvidence(value, score, change, trend), pallidus)

    second = at(2)
    assert second.level == "not elevated"
    assert any("no significant fall" in r for r in second.reasons)
    third = at(3)
    assert third.level == "elevated"
    assert any("is falling" in r and "over 3 comparable visits" in r for r in third.reasons)
