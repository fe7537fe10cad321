"""The trend-and-step test on constructed histories."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import pytest
from scipy.stats import norm

from monitor.norms import default_model
from monitor.tracking.change import VisitValue
from monitor.tracking.trend import critical_z, expected_course, trend_test

START = datetime(2020, 6, 1)


def history(values: list[float], gaps_days: list[float] | None = None) -> list[VisitValue]:
    days = np.cumsum([0.0, *(gaps_days or [365.25] * (len(values) - 1))])
    return [
        VisitValue(f"v{k}", START + timedelta(days=float(d)), v)
        for k, (d, v) in enumerate(zip(days, values, strict=True))
    ]


def test_two_visits_are_the_pairwise_difference() -> None:
    visits = history([1.0, -5.0])
    result = trend_test(visits[:1], visits[1], 2.0)
    assert result is not None and result.correlation == 1.0
    assert result.trend_z == pytest.approx(-6.0 / (2.0 * math.sqrt(2.0)))
    assert result.step_z == pytest.approx(result.trend_z)
    assert critical_z(result.correlation, 0.025) == pytest.approx(norm.isf(0.025))


def test_baseline_or_missing_value_gives_no_trend() -> None:
    visits = history([1.0, float("nan")])
    assert trend_test([], visits[0], 2.0) is None
    assert trend_test(visits[:1], visits[1], 2.0) is None


def test_slope_uses_every_visit_and_irregular_spacing() -> None:
    visits = history([0.0, -1.0, -3.0, -6.0], [100, 500, 365])
    result = trend_test(list(reversed(visits[:3])), visits[3], 2.4)  # order does not matter
    years = np.array([0, 100, 600, 965]) / 365.25
    slope = np.polyfit(years, [0.0, -1.0, -3.0, -6.0], 1)[0]
    assert result.slope_ppb_per_year == pytest.approx(slope)
    assert result.step_ppb == pytest.approx(-6.0 + 4.0 / 3)
    assert 0.0 < result.correlation < 1.0
    assert critical_z(result.correlation, 0.03) > norm.isf(0.03)  # two looks cost a little


def test_values_on_the_normative_course_show_no_departure() -> None:
    curve = default_model().curve("globus_pallidus")
    ages = [20.0 + k for k in range(5)]
    visits = history([curve.mean_ppb(a) for a in ages])
    course = expected_course(curve, ages[-1], None, visits[-1])
    adjusted = trend_test(visits[:-1], visits[-1], 2.4, course)
    raw = trend_test(visits[:-1], visits[-1], 2.4)
    assert raw.trend_z > 2  # a young pallidum rises by itself (~1.5 ppb/year here)
    assert adjusted.trend_z == pytest.approx(0.0, abs=0.05)
    assert adjusted.expected_slope_ppb_per_year == pytest.approx(raw.slope_ppb_per_year, rel=0.02)
