"""Progression-risk flag from configured rules: decision support with reasons, never a diagnosis.

The default rules follow the seed study (Zivadinov et al., Radiology 2018): lower thalamic and
higher globus pallidus susceptibility went with more disability. A rule fires when its
structure's z-score is beyond the threshold *or* its trend or step over all comparable visits
(`monitor.tracking.trend`) goes the flagged way beyond the limit a stable person crosses with
probability ``change_alpha`` at this visit. The thresholds share one per-visit false-alarm
budget (docs/norms.md): several rules that each allowed 5 % added up to 12 %. Levels:

* ``elevated``: at least one rule fired (a cross-sectional z stays valid even when the
  protocol changed, so it may fire without a comparable prior);
* ``indeterminate``: no rule fired but the data cannot rule it out: QC failed, the visit is not
  comparable to the earlier ones, a structure is missing, or no norms cover the patient's age;
* ``not elevated``: every rule was evaluated and none fired.

Each reason names the numbers behind it, so a reader can check the call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from monitor.norms.model import NormScore
from monitor.settings import RiskRuleSettings, RiskSettings
from monitor.tracking.change import ChangeResult
from monitor.tracking.signed import signed
from monitor.tracking.trend import TrendResult, critical_z

__all__ = [
    "DISCLAIMER",
    "SEED_PATTERN",
    "RiskAssessment",
    "RiskLevel",
    "StructureEvidence",
    "assess_risk",
]

RiskLevel = Literal["elevated", "not elevated", "indeterminate"]

DISCLAIMER = "Decision support only, not a diagnosis: interpret together with the clinical picture."
SEED_PATTERN = (
    "This matches the pattern a reference study associated with greater disability in "
    "multiple sclerosis (lower thalamic, higher globus pallidus susceptibility)."
)


@dataclass(frozen=True)
class StructureEvidence:
    """What is known about one structure (bilateral value) at this visit."""

    value_ppb: float | None
    score: NormScore | None
    """None when no norms cover the patient's age (or no age is known)."""
    change: ChangeResult | None
    """None when there is no comparable earlier visit."""
    trend: TrendResult | None = None
    """Trend and step over the comparable visits; None at a baseline. The change rule uses
    this, `change` is the descriptive pairwise record."""


@dataclass(frozen=True)
class RiskAssessment:
    level: RiskLevel
    reasons: tuple[str, ...]

    def as_record(self) -> dict[str, Any]:
        return {"level": self.level, "reasons": list(self.reasons)}


@dataclass(frozen=True)
class _RuleOutcome:
    fired: tuple[str, ...]
    quiet: tuple[str, ...]
    gaps: tuple[str, ...]


def assess_risk(
    evidence: Mapping[str, StructureEvidence],
    settings: RiskSettings,
    *,
    qc_failures: Sequence[str] = (),
    not_comparable_reason: str | None = None,
    age_years: float | None = None,
) -> RiskAssessment:
    """Apply every configured rule to this visit's evidence (keyed by structure name)."""
    if qc_failures:
        reasons = [f"Quality control failed: {failure}." for failure in qc_failures]
        return RiskAssessment("indeterminate", (*reasons, "No risk call is made.", DISCLAIMER))
    outcomes = [
        _apply_rule(rule, evidence.get(rule.structure), age_years) for rule in settings.rules
    ]
    fired = [reason for outcome in outcomes for reason in outcome.fired]
    quiet = [reason for outcome in outcomes for reason in outcome.quiet]
    gaps = [reason for outcome in outcomes for reason in outcome.gaps]
    if not_comparable_reason:
        gaps.append(
            f"This visit is not comparable with earlier ones ({not_comparable_reason}); "
            "change since earlier visits is not assessed."
        )
    if fired:
        return RiskAssessment("elevated", (*fired, *gaps, SEED_PATTERN, DISCLAIMER))
    if gaps:
        return RiskAssessment("indeterminate", (*gaps, *quiet, DISCLAIMER))
    return RiskAssessment("not elevated", (*quiet, DISCLAIMER))


def _apply_rule(
    rule: RiskRuleSettings, evidence: StructureEvidence | None, age_years: float | None
) -> _RuleOutcome:
    name = rule.structure.replace("_", " ")
    if evidence is None or evidence.value_ppb is None:
        return _RuleOutcome((), (), (f"No {name} measurement is available.",))
    fired: list[str] = []
    quiet: list[str] = []
    gaps: list[str] = []
    score = evidence.score
    if score is None:
        age = "unknown age" if age_years is None else f"age {age_years:.0f} years"
        gaps.append(f"No normative values cover {age} for the {name}; its z-score is unknown.")
    else:
        beyond = (
            score.z <= rule.z_threshold
            if rule.direction == "low"
            else (score.z >= rule.z_threshold)
        )
        text = (
            f"{name.capitalize()} susceptibility {score.value_ppb:.1f} ppb, z = {score.z:.2f} "
            f"(expected {score.expected_ppb:.1f} ppb for age; reference range "
            f"{score.reference_range_ppb[0]:.1f} to {score.reference_range_ppb[1]:.1f} ppb; "
            f"rule: z {'<=' if rule.direction == 'low' else '>='} {rule.z_threshold:g})"
        )
        (fired if beyond else quiet).append(text + ("." if beyond else ": within the rule."))
    if evidence.trend is not None:
        _judge_trend(rule, name, evidence.trend, fired, quiet)
    else:
        quiet.append(f"{name.capitalize()}: no earlier comparable visit, change not assessed.")
    return _RuleOutcome(tuple(fired), tuple(quiet), tuple(gaps))


def _judge_trend(
    rule: RiskRuleSettings,
    name: str,
    trend: TrendResult,
    fired: list[str],
    quiet: list[str],
) -> None:
    """Fire when the trend or the step goes the rule's way beyond the per-visit limit."""
    direction = -1 if rule.direction == "low" else 1
    limit = direction * critical_z(trend.correlation, rule.change_alpha)
    expected = (
        ""
        if trend.expected_slope_ppb_per_year is None
        else f", {signed(trend.expected_slope_ppb_per_year)} expected with age"
    )
    numbers = (
        f"trend {signed(trend.slope_ppb_per_year)} ppb/year{expected} over {trend.n_visits} "
        f"comparable visits (z = {signed(trend.trend_z, 2)}), latest value "
        f"{signed(trend.step_ppb)} ppb against the mean of the earlier ones "
        f"(z = {signed(trend.step_z, 2)}); limit z {signed(limit, 2)}, "
        f"crossed by a stable person at {100 * rule.change_alpha:g} % of visits "
        f"(scan-rescan SD {trend.retest_sd_ppb:g} ppb)"
    )
    if trend.fires(direction, rule.change_alpha):
        verb = "is falling" if direction < 0 else "is rising"
        fired.append(f"{name.capitalize()} susceptibility {verb}: {numbers}.")
    else:
        movement = "fall" if direction < 0 else "rise"
        quiet.append(f"{name.capitalize()}: no significant {movement}; {numbers}.")
