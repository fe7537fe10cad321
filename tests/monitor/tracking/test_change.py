"""Change since previous/baseline comparable visits, annual rate and reliable change."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pytest

from monitor.tracking.change import (
    VisitValue,
    change_record,
    compute_change,
    reliable_limit_ppb,
)

T0 = datetime(2020, 3, 1, 9, 0)


def visit(uid: str, years: float, value: float) -> VisitValue:
    return VisitValue(uid, T0 + timedelta(days=365.25 * years), value)


def test_baseline_has_no_change() -> None:
    result = compute_change([], visit("a", 0, 50.0), retest_sd_ppb=2.4)
    assert result.previous_study_uid is None and result.change_ppb is None
    assert result.reliable_change is None and result.annual_change_ppb_per_year is None
    assert all(value is None for value in result.as_record().values())
    assert result.n_visits == 1


def test_two_visits_change_percent_rate_and_reliability() -> None:
    result = compute_change([visit("a", 0, 50.0)], visit("b", 2, 60.0), retest_sd_ppb=2.4)
    assert result.previous_study_uid == "a" and result.baseline_study_uid == "a"
    assert result.change_ppb == pytest.approx(10.0)
    assert result.change_pct == pytest.approx(20.0)
    assert result.annual_change_ppb_per_year == pytest.approx(5.0)
    assert result.reliable_limit_ppb == pytest.approx(1.96 * math.sqrt(2) * 2.4)
    assert result.reliable_change is True


def test_change_below_the_limit_is_not_reliable() -> None:
    limit = reliable_limit_ppb(2.4)
    result = compute_change([visit("a", 0, 50.0)], visit("b", 1, 50.0 - 0.9 * limit), 2.4)
    assert result.reliable_change is False


def test_three_visits_use_least_squares_slope_and_baseline() -> None:
    earlier = [visit("b", 1, 47.0), visit("a", 0, 50.0)]  # unordered on purpose
    current = visit("c", 2, 45.0)
    result = compute_change(earlier, current, retest_sd_ppb=2.4)
    assert result.previous_study_uid == "b" and result.baseline_study_uid == "a"
    assert result.change_ppb == pytest.approx(-2.0)
    assert result.change_from_baseline_ppb == pytest.approx(-5.0)
    assert result.annual_change_ppb_per_year == pytest.approx(-2.5)  # slope of 50, 47, 45
    assert result.reliable_change is False and result.reliable_change_from_baseline is False
    assert result.n_visits == 3


def test_later_visits_are_ignored_for_a_backfilled_prior() -> None:
    history = [visit("a", 0, 50.0), visit("c", 2, 80.0)]
    result = compute_change(history, visit("b", 1, 52.0), retest_sd_ppb=2.4)
    assert result.previous_study_uid == "a"
    assert result.change_ppb == pytest.approx(2.0)
    assert result.n_visits == 2


def test_percent_is_null_for_a_baseline_within_50_ppb_of_the_reference() -> None:
    result = compute_change([visit("a", 0, -25.0)], visit("b", 1, -49.0), retest_sd_ppb=2.4)
    assert result.change_ppb == pytest.approx(-24.0)
    assert result.change_pct is None
    assert compute_change([visit("a", 0, -50.0)], visit("b", 1, -49.0), 2.4).change_pct == 2.0


def test_percent_is_null_near_zero_reference() -> None:
    result = compute_change([visit("a", 0, -1.1)], visit("b", 1, -9.0), retest_sd_ppb=2.4)
    assert result.change_ppb == pytest.approx(-7.9)
    assert result.change_pct is None
    assert result.reliable_change is True


def test_invalid_retest_sd_is_an_error() -> None:
    with pytest.raises(ValueError, match="positive"):
        compute_change([visit("a", 0, 1.0)], visit("b", 1, 2.0), retest_sd_ppb=0.0)


def test_record_fields_are_rounded_and_null_without_a_change() -> None:
    result = compute_change([visit("a", 0, 50.0)], visit("b", 1, 51.23456), retest_sd_ppb=2.4)
    record = change_record(result)
    assert record["change_ppb"] == pytest.approx(1.235) and record["reliable_change"] is False
    empty = change_record(None)
    assert set(empty) == set(record) and all(value is None for value in empty.values())
