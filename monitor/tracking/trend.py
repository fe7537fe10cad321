"""Change test over all comparable visits: a trend and a step, with one false-alarm rate.

Pairwise reliable change (`monitor.tracking.change`) looks at two scans, so a steady decline
over four visits is judged on the last pair or on the baseline pair only, and every extra
comparison adds false alarms. This test uses every comparable visit of a structure:

* **trend**: least-squares slope of value on time, with its standard error from the site's
  scan-rescan SD (``SD / sqrt(sum (t - mean t)^2)``); a known noise level, not one estimated
  from three or four points, because a per-patient estimate would be nearly useless;
* **step**: the current value against the mean of the earlier visits (standard error
  ``SD * sqrt(1 + 1/m)`` for m earlier visits), which catches a sudden change late in a long
  stable history that the slope dilutes.

Both are linear contrasts of the same independent scan errors, so under "stable person, only
scan-rescan noise" they are standard normal with a known correlation. A rule fires when the
larger of the two (in its direction) exceeds the critical value at which a stable person
exceeds it with probability ``alpha`` at this visit: exact per visit, at every visit number,
whatever the spacing of the visits. With two visits both are the pairwise difference.

Where norms cover the patient, both are computed on the departure from the normative course
(value minus the expected value at the age of each visit), so healthy ageing is not change.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

import numpy as np
from scipy import integrate, optimize
from scipy.special import ndtr
from scipy.stats import norm

from monitor.norms.model import NormCurve
from monitor.tracking.change import VisitValue, years_between

__all__ = [
    "TrendResult",
    "expected_course",
    "contrasts",
    "critical_z",
    "exceeds",
    "trend_statistics",
    "trend_test",
]

_SAME_TEST = 1.0 - 1e-9
"""Correlation above which the two statistics are one (two visits): the critical value is the
plain one-sided normal quantile."""


@dataclass(frozen=True)
class TrendResult:
    """Trend and step of one structure at one visit (signed: negative = falling)."""

    n_visits: int
    """Comparable visits used, the current one included (>= 2)."""
    slope_ppb_per_year: float
    """Least-squares slope of the measured values."""
    expected_slope_ppb_per_year: float | None
    """Slope of the normative expected values at the patient's ages (None: not adjusted);
    trend_z tests the measured slope minus this one."""
    slope_se_ppb_per_year: float
    trend_z: float
    step_ppb: float
    """Current value minus the mean of the earlier comparable visits, both after removing the
    expected values when adjusted."""
    step_z: float
    correlation: float
    """Correlation of trend_z and step_z for a stable person (1 with two visits)."""
    retest_sd_ppb: float

    def fires(self, direction: int, alpha: float) -> bool:
        """Beyond the limit a stable person exceeds with probability ``alpha`` at this visit."""
        return bool(exceeds(self.trend_z, self.step_z, self.correlation, direction, alpha))


def contrasts(years: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm weights of the trend and the step statistic over visits at ``years``.

    ``values @ weights / retest_sd`` is standard normal for a stable person; the last visit
    is the current one.
    """
    centred = years - years.mean()
    spread = float(centred @ centred)
    if len(years) < 2 or spread <= 0:
        raise ValueError("a trend needs at least two visits at different times")
    trend = centred / math.sqrt(spread)
    step = np.full(len(years), -1.0 / (len(years) - 1))
    step[-1] = 1.0
    return trend, step / float(np.linalg.norm(step))


def trend_statistics(
    years: np.ndarray, values: np.ndarray, retest_sd_ppb: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """trend_z and step_z of many people at once (``values``: people x visits at ``years``),
    and their correlation: the vectorised core that `trend_test` and the simulations share."""
    trend, step = contrasts(np.asarray(years, dtype=float))
    values = np.atleast_2d(np.asarray(values, dtype=float))
    return (
        values @ trend / retest_sd_ppb,
        values @ step / retest_sd_ppb,
        round(float(np.clip(trend @ step, -1.0, 1.0)), 9),  # rounded: a cache key
    )


def exceeds(
    trend_z: np.ndarray | float,
    step_z: np.ndarray | float,
    correlation: float,
    direction: int,
    alpha: float,
) -> np.ndarray:
    """The rule's decision: trend or step beyond the per-visit limit in ``direction``
    (-1 falling, +1 rising), elementwise."""
    larger = np.maximum(direction * np.asarray(trend_z), direction * np.asarray(step_z))
    return larger > critical_z(correlation, alpha)


@lru_cache(maxsize=1024)
def critical_z(correlation: float, alpha: float) -> float:
    """c with P(max(Z1, Z2) > c) = alpha for standard normals of this correlation."""
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
    if correlation >= _SAME_TEST:
        return float(norm.isf(alpha))
    spread = math.sqrt(1.0 - correlation**2)

    def exceed(c: float) -> float:
        both_below, _ = integrate.quad(
            lambda z: math.exp(-0.5 * z * z) * ndtr((c - correlation * z) / spread), -np.inf, c
        )
        both_below /= math.sqrt(2.0 * math.pi)  # the standard normal density's constant
        return 1.0 - both_below - alpha

    # between one test at alpha and two independent ones (correlation >= 0 for ordered visits)
    return float(optimize.brentq(exceed, float(norm.isf(alpha)), float(norm.isf(alpha / 2)) + 1))


def trend_test(
    earlier: Sequence[VisitValue],
    current: VisitValue,
    retest_sd_ppb: float,
    expected_ppb: Callable[[datetime], float] | None = None,
) -> TrendResult | None:
    """Trend and step of ``current`` over the earlier comparable visits (later ones ignored);
    None at a baseline or when the value is missing.

    ``expected_ppb`` gives the normative expected value on a date (the patient's age then):
    the test is then on the departure from that course, because healthy ageing moves the
    values too (on the default curves a 20-year-old's pallidum rises ~1.8 ppb a year, which
    over ten yearly visits would flag a healthy person as "rising"). None: raw values.
    """
    prior = sorted(
        (v for v in earlier if v.acquired_at < current.acquired_at and math.isfinite(v.value_ppb)),
        key=lambda v: v.acquired_at,
    )
    if not prior or not math.isfinite(current.value_ppb):
        return None
    visits = [*prior, current]
    start = visits[0].acquired_at
    years = np.array([years_between(start, v.acquired_at) for v in visits])
    values = np.array([v.value_ppb for v in visits])
    expected = (
        np.zeros(len(visits))
        if expected_ppb is None
        else np.array([expected_ppb(v.acquired_at) for v in visits])
    )
    departure = values - expected
    raw_z, _, _ = trend_statistics(years, values, retest_sd_ppb)
    trend_z, step_z, correlation = trend_statistics(years, departure, retest_sd_ppb)
    centred = years - years.mean()
    se = retest_sd_ppb / math.sqrt(float(centred @ centred))
    return TrendResult(
        n_visits=len(visits),
        slope_ppb_per_year=float(raw_z[0]) * se,
        expected_slope_ppb_per_year=None
        if expected_ppb is None
        else float(raw_z[0] - trend_z[0]) * se,
        slope_se_ppb_per_year=se,
        trend_z=float(trend_z[0]),
        step_ppb=float(departure[-1] - departure[:-1].mean()),
        step_z=float(step_z[0]),
        correlation=correlation,
        retest_sd_ppb=retest_sd_ppb,
    )


def expected_course(
    curve: NormCurve, age_years: float, sex: str | None, current: VisitValue
) -> Callable[[datetime], float]:
    """The normative expected value on any date for a patient of ``age_years`` at ``current``."""
    return lambda when: curve.mean_ppb(age_years - years_between(when, current.acquired_at), sex)
