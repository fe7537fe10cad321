"""Change of one structure's susceptibility across a patient's comparable visits.

Only visits whose protocols are comparable may be passed in (the caller decides that); this
module does the arithmetic and the reliable-change decision:

* change since the previous visit and since the baseline (first) visit, in ppb and percent;
* the annualised rate: the least-squares slope over all visits when there are three or more
  (it uses every measurement, so one noisy scan moves it less), else the two-point slope;
* a change is *reliable* when ``|change| > factor * SD_retest``, with the default factor
  ``1.96 * sqrt(2)``: the difference of two scans carries the scan-rescan noise twice, and
  1.96 keeps a stable patient below the limit in 95 % of visit pairs (Jacobson & Truax 1991).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

DAYS_PER_YEAR = 365.25

_RECORD_FIELDS: tuple[str, ...] = (
    "change_ppb",
    "change_pct",
    "change_from_baseline_ppb",
    "change_from_baseline_pct",
    "annual_change_ppb_per_year",
    "reliable_change",
    "reliable_change_from_baseline",
)

MIN_PERCENT_BASE_PPB = 50.0
"""Percent change only from a baseline at least this far from zero; below it the change is
reported in ppb alone. Values are relative to a reference region, so a baseline near zero
(the thalamus against the whole-brain mean) turned a 10 ppb change into -103.84 %; with a
scan-rescan SD of 2-4 ppb, at 50 ppb the noise alone is 4-8 %, and below it tens of percent."""


@dataclass(frozen=True)
class VisitValue:
    """One visit's value for one structure and side."""

    study_uid: str
    acquired_at: datetime
    value_ppb: float


@dataclass(frozen=True)
class ChangeResult:
    """Change of the current visit against the earlier comparable ones; None where undefined."""

    previous_study_uid: str | None
    baseline_study_uid: str | None
    change_ppb: float | None
    change_pct: float | None
    change_from_baseline_ppb: float | None
    change_from_baseline_pct: float | None
    annual_change_ppb_per_year: float | None
    reliable_change: bool | None
    """Change since the previous visit beyond the reliable-change limit."""
    reliable_change_from_baseline: bool | None
    reliable_limit_ppb: float
    n_visits: int
    """Comparable visits behind these numbers, the current one included."""

    def as_record(self) -> dict[str, Any]:
        """The record fields of a structure or side (notes/record_schema.md)."""
        record = {name: getattr(self, name) for name in _RECORD_FIELDS}
        return {name: round(v, 3) if isinstance(v, float) else v for name, v in record.items()}


def change_record(change: ChangeResult | None) -> dict[str, Any]:
    """Record fields of a change, all null when none was computed (e.g. not comparable)."""
    if change is not None:
        return change.as_record()
    return dict.fromkeys(_RECORD_FIELDS)


def reliable_limit_ppb(retest_sd_ppb: float, factor: float = 1.96 * math.sqrt(2.0)) -> float:
    """Smallest absolute change that counts as real rather than scan-rescan noise."""
    if not retest_sd_ppb > 0 or not factor > 0:
        raise ValueError(
            f"test-retest SD and factor must be positive, got {retest_sd_ppb} and {factor}"
        )
    return factor * retest_sd_ppb


def compute_change(
    earlier: Sequence[VisitValue],
    current: VisitValue,
    retest_sd_ppb: float,
    factor: float = 1.96 * math.sqrt(2.0),
) -> ChangeResult:
    """Change of ``current`` against ``earlier`` comparable visits (any order; later ones ignored).

    Visits acquired at or after the current one are ignored, so a back-filled history can be
    passed whole; with no earlier visit every change is None (a baseline).
    """
    limit = reliable_limit_ppb(retest_sd_ppb, factor)
    prior = sorted(
        (v for v in earlier if v.acquired_at < current.acquired_at and math.isfinite(v.value_ppb)),
        key=lambda v: v.acquired_at,
    )
    if not prior or not math.isfinite(current.value_ppb):
        return ChangeResult(None, None, None, None, None, None, None, None, None, limit, 1)
    previous, baseline = prior[-1], prior[0]
    change = current.value_ppb - previous.value_ppb
    from_baseline = current.value_ppb - baseline.value_ppb
    return ChangeResult(
        previous_study_uid=previous.study_uid,
        baseline_study_uid=baseline.study_uid,
        change_ppb=change,
        change_pct=_percent(change, previous.value_ppb),
        change_from_baseline_ppb=from_baseline,
        change_from_baseline_pct=_percent(from_baseline, baseline.value_ppb),
        annual_change_ppb_per_year=annual_rate_ppb_per_year([*prior, current]),
        reliable_change=abs(change) > limit,
        reliable_change_from_baseline=abs(from_baseline) > limit,
        reliable_limit_ppb=limit,
        n_visits=len(prior) + 1,
    )


def annual_rate_ppb_per_year(visits: Sequence[VisitValue]) -> float | None:
    """Least-squares slope over all visits when >= 3, else two-point; None if undefined."""
    if len(visits) < 2:
        return None
    ordered = sorted(visits, key=lambda v: v.acquired_at)
    years = np.array([years_between(ordered[0].acquired_at, v.acquired_at) for v in ordered])
    values = np.array([v.value_ppb for v in ordered])
    if len(ordered) == 2:
        span = years[1] - years[0]
        return None if span <= 0 else float((values[1] - values[0]) / span)
    centred = years - years.mean()
    spread = float(centred @ centred)
    if spread <= 0:
        return None
    return float(centred @ (values - values.mean()) / spread)


def years_between(start: datetime, end: datetime) -> float:
    """Time from ``start`` to ``end`` in years of 365.25 days (rates are per year)."""
    return (end - start).total_seconds() / (86400.0 * DAYS_PER_YEAR)


def _percent(change: float, base: float) -> float | None:
    return None if abs(base) < MIN_PERCENT_BASE_PPB else 100.0 * change / abs(base)
