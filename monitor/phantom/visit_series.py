"""Simulated yearly visits of many people at once: the evidence for the alert rules.

Noise model (docs/norms.md, "Alert rule"):

* a person's true value of each structure is the normative expected value at their first
  visit plus a person-specific offset drawn with the *biological* spread
  ``sqrt(SD(age)^2 - SD_retest^2)`` (the model's SD describes single scans of controls, so it
  already holds one scan's noise), and stays constant (``ageing=False``: "stable") or follows
  the normative curve as the person ages (``ageing=True``: healthy ageing);
* each visit measures the true value plus independent normal scan-rescan noise of
  SD_retest, independent between structures and visits;
* visits are exactly one year apart; ages uniform in 20-70 years at the first visit.

`rule_flags` applies the configured risk rules to every person at one visit, vectorised: z as
`NormCurve.score` computes it, the change test with `monitor.tracking.trend` (the functions
`assess_risk` calls); a test checks it against `assess_risk` person by person.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from monitor.norms.model import NormativeModel
from monitor.settings import RiskSettings
from monitor.tracking.trend import exceeds, trend_statistics

__all__ = ["VisitSeries", "rule_flags", "simulate_visits"]


@dataclass(frozen=True)
class VisitSeries:
    """Measured bilateral values of people x visits, one array per structure."""

    years: np.ndarray
    """Visit times in years since the first visit."""
    ages: np.ndarray
    """Age at each visit, people x visits."""
    values: Mapping[str, np.ndarray]
    expected: Mapping[str, np.ndarray]
    """The model's expected value at each visit's age (sex-neutral), people x visits."""
    spread: Mapping[str, np.ndarray]
    """The model's SD at each visit's age, people x visits."""

    def with_change(self, structure: str, change_ppb: Sequence[float]) -> VisitSeries:
        """The same people with a true change added to one structure (one value per visit)."""
        changed = dict(self.values)
        changed[structure] = self.values[structure] + np.asarray(change_ppb, dtype=float)
        return replace(self, values=changed)


def simulate_visits(  # noqa: PLR0913 - the noise model's knobs
    model: NormativeModel,
    retest_sd_ppb: Mapping[str, float],
    structures: Sequence[str],
    n_people: int,
    n_visits: int,
    rng: np.random.Generator,
    *,
    ageing: bool = False,
    age_range_years: tuple[float, float] = (20.0, 70.0),
) -> VisitSeries:
    """Healthy people scanned once a year (noise model in the module docstring)."""
    years = np.arange(n_visits, dtype=float)
    first_age = rng.uniform(*age_range_years, n_people)
    ages = first_age[:, None] + years[None, :]
    values, expected_at, spread_at = {}, {}, {}
    for structure in structures:
        curve = model.curve(structure)
        if curve is None:
            raise ValueError(f"model has no {structure} curve to simulate from")
        expected = np.vectorize(curve.mean_ppb)(ages)
        sd = np.vectorize(curve.sd_ppb)(first_age)
        retest = retest_sd_ppb[structure]
        offset = rng.normal(0.0, 1.0, n_people) * np.sqrt(np.maximum(sd**2 - retest**2, 0.0))
        truth = (expected if ageing else expected[:, :1]) + offset[:, None]
        values[structure] = truth + rng.normal(0.0, retest, (n_people, n_visits))
        expected_at[structure] = expected
        spread_at[structure] = np.vectorize(curve.sd_ppb)(ages)
    return VisitSeries(years, ages, values, expected_at, spread_at)


def rule_flags(series: VisitSeries, risk: RiskSettings, visit: int) -> dict[str, np.ndarray]:
    """Which people each rule flags at ``visit`` (1-based), from visits 1..visit only.

    Keys ``"<structure> z"`` and ``"<structure> change"`` per rule; every person is assumed
    comparable at every visit and inside the model's ages.
    """
    flags: dict[str, np.ndarray] = {}
    for rule in risk.rules:
        values = series.values[rule.structure][:, :visit]
        z = (values[:, -1] - series.expected[rule.structure][:, visit - 1]) / series.spread[
            rule.structure
        ][:, visit - 1]
        beyond = z <= rule.z_threshold if rule.direction == "low" else z >= rule.z_threshold
        flags[f"{rule.structure} z"] = beyond
        if visit < 2:
            flags[f"{rule.structure} change"] = np.zeros(len(values), dtype=bool)
            continue
        departure = values - series.expected[rule.structure][:, :visit]  # as assess_visit does
        trend_z, step_z, correlation = trend_statistics(
            series.years[:visit], departure, risk.retest_sd_ppb[rule.structure]
        )
        direction = -1 if rule.direction == "low" else 1
        flags[f"{rule.structure} change"] = exceeds(
            trend_z, step_z, correlation, direction, rule.change_alpha
        )
    return flags
