"""Fit a site normative model from local controls processed by this same pipeline.

Per structure and side: the mean curve by nonlinear least squares (the saturating
exponential has no closed form), the spread from the absolute residuals (for a normal
residual ``E|r| = sd * sqrt(2/pi)``, so regressing ``|r| * sqrt(pi/2)`` on age gives an
age-dependent SD without a second nonlinear fit), and 95 % percentile bootstrap intervals by
resampling controls. Sex enters as an additive male offset only when both sexes have enough
controls; otherwise the offset is fixed at 0 and the report says so.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from monitor.norms.controls_csv import ControlRow
from monitor.norms.model import (
    REF_AGE_YEARS,
    STRUCTURE_FORMS,
    NormativeModel,
    NormCurve,
    NormsError,
)

AGE_BAND_EDGES_YEARS: tuple[float, ...] = (18, 30, 40, 50, 60, 70, 80)
MIN_CONTROLS_PER_BAND = 10
"""Fewer controls than this in an age band makes the curve there mostly extrapolation."""
MIN_CONTROLS_PER_SEX = 10
MIN_CONTROLS_PER_CURVE = 20
MIN_AGE_SPAN_YEARS = 10.0
TAU_BOUNDS_YEARS = (1.0, 150.0)
CI_PERCENTILES = (2.5, 97.5)


@dataclass(frozen=True)
class FitReport:
    model: NormativeModel
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class _Data:
    age: np.ndarray
    male: np.ndarray
    """1 for men, 0 for women; rows of other or unknown sex count 0.5 (as when scoring)."""
    value: np.ndarray


def fit_site_model(
    rows: Sequence[ControlRow],
    *,
    name: str = "site",
    n_bootstrap: int = 200,
    seed: int = 0,
) -> FitReport:
    """One curve per (structure, side) present in ``rows``; warnings list thin age bands."""
    if n_bootstrap < 20:
        raise NormsError(f"at least 20 bootstrap resamples are needed, got {n_bootstrap}")
    groups: dict[tuple[str, str], list[ControlRow]] = defaultdict(list)
    for row in rows:
        groups[(row.structure, row.side)].append(row)
    rng = np.random.default_rng(seed)
    curves: dict[tuple[str, str], NormCurve] = {}
    warnings: list[str] = []
    for (structure, side), members in sorted(groups.items()):
        curve, notes = _fit_curve(structure, side, members, n_bootstrap, rng)
        curves[(structure, side)] = curve
        warnings.extend(notes)
    model = NormativeModel(
        name=name,
        source="site",
        reference_region="whole_brain",
        curves=curves,
        description=f"Fitted from {len({r.subject_id for r in rows})} local controls.",
    )
    return FitReport(model=model, warnings=tuple(warnings))


def _age_bands() -> tuple[tuple[str, float, float], ...]:
    """(label, lower, upper) per band: "<18", "18-29", ..., "80+" (upper bound exclusive)."""
    edges = (-math.inf, *AGE_BAND_EDGES_YEARS, math.inf)
    bands = []
    for lower, upper in zip(edges, edges[1:], strict=False):
        if lower == -math.inf:
            label = f"<{upper:g}"
        elif upper == math.inf:
            label = f"{lower:g}+"
        else:
            label = f"{lower:g}-{upper - 1:g}"
        bands.append((label, lower, upper))
    return tuple(bands)


AGE_BANDS = _age_bands()


def age_band_counts(ages: Sequence[float]) -> dict[str, int]:
    """Controls per age band, every band listed (zero where none)."""
    return {
        label: sum(1 for age in ages if lower <= age < upper) for label, lower, upper in AGE_BANDS
    }


def _fit_curve(
    structure: str,
    side: str,
    rows: Sequence[ControlRow],
    n_bootstrap: int,
    rng: np.random.Generator,
) -> tuple[NormCurve, list[str]]:
    key = f"{structure}/{side}"
    if len(rows) < MIN_CONTROLS_PER_CURVE:
        raise NormsError(
            f"{key}: {len(rows)} controls; at least {MIN_CONTROLS_PER_CURVE} are needed for a curve"
        )
    data = _Data(
        age=np.array([r.age_years for r in rows]),
        male=np.array([{"M": 1.0, "F": 0.0}.get(r.sex, 0.5) for r in rows]),
        value=np.array([r.mean_ppb for r in rows]),
    )
    if np.ptp(data.age) < MIN_AGE_SPAN_YEARS:
        raise NormsError(
            f"{key}: controls span {np.ptp(data.age):.1f} years of age; a curve over age needs "
            f"at least {MIN_AGE_SPAN_YEARS:g}"
        )
    sexes = [r.sex for r in rows]
    with_sex = min(sexes.count("F"), sexes.count("M")) >= MIN_CONTROLS_PER_SEX
    form = STRUCTURE_FORMS[structure]
    params = _fit_params(form, data, with_sex, start=None)
    ci = _bootstrap_intervals(form, data, with_sex, params, n_bootstrap, rng)
    bands = age_band_counts(data.age)
    notes = _thin_band_notes(key, bands, data.age)
    if not with_sex:
        notes.append(
            f"{key}: fewer than {MIN_CONTROLS_PER_SEX} women or men; no sex covariate fitted"
        )
    curve = NormCurve(
        structure=structure,
        side=side,
        form=form,
        params=params,
        ref_age_years=REF_AGE_YEARS,
        age_range_years=(float(data.age.min()), float(data.age.max())),
        ci=ci,
        n_controls=len(rows),
        age_band_counts=bands,
        sex_supported=with_sex,
    )
    return curve, notes


def _bootstrap_intervals(
    form: str,
    data: _Data,
    with_sex: bool,
    params: Mapping[str, float],
    n_bootstrap: int,
    rng: np.random.Generator,
) -> dict[str, tuple[float, float]]:
    """95 % percentile intervals from refits on controls resampled with replacement."""
    samples = []
    for _ in range(n_bootstrap):
        pick = rng.integers(0, len(data.age), len(data.age))
        resampled = _Data(data.age[pick], data.male[pick], data.value[pick])
        samples.append(_fit_params(form, resampled, with_sex, start=params))
    intervals = {}
    for name in params:
        low, high = np.percentile([sample[name] for sample in samples], CI_PERCENTILES)
        intervals[name] = (float(low), float(high))
    return intervals


def _thin_band_notes(key: str, bands: Mapping[str, int], ages: np.ndarray) -> list[str]:
    """Warnings for bands inside the controls' age span (bands outside it are simply uncovered)."""
    return [
        f"{key}: only {bands[label]} controls aged {label} (fewer than "
        f"{MIN_CONTROLS_PER_BAND}); the curve there rests on few people"
        for label, lower, upper in AGE_BANDS
        if lower <= ages.max() and upper > ages.min() and bands[label] < MIN_CONTROLS_PER_BAND
    ]


def _fit_params(
    form: str, data: _Data, with_sex: bool, start: Mapping[str, float] | None
) -> dict[str, float]:
    mean_params, fitted = (
        _fit_saturating(data, with_sex, start)
        if form == "saturating"
        else _fit_linear(data, with_sex)
    )
    sd_ppb, sd_slope = _fit_spread(data, data.value - fitted, len(mean_params))
    params = {**mean_params, "sd_ppb": sd_ppb, "sd_slope_ppb_per_year": sd_slope}
    params.setdefault("male_offset_ppb", 0.0)
    return params


def _fit_linear(data: _Data, with_sex: bool) -> tuple[dict[str, float], np.ndarray]:
    columns = [np.ones_like(data.age), data.age - REF_AGE_YEARS]
    if with_sex:
        columns.append(data.male)
    design = np.column_stack(columns)
    coef, *_ = np.linalg.lstsq(design, data.value, rcond=None)
    params = {"intercept_ppb": float(coef[0]), "slope_ppb_per_year": float(coef[1])}
    if with_sex:
        params["male_offset_ppb"] = float(coef[2])
    return params, design @ coef


def _fit_saturating(
    data: _Data, with_sex: bool, start: Mapping[str, float] | None
) -> tuple[dict[str, float], np.ndarray]:
    def predict(x: np.ndarray) -> np.ndarray:
        curve = x[0] - x[1] * np.exp(-data.age / x[2])
        return curve + x[3] * data.male if with_sex else curve

    if start is None:
        old = data.value[data.age >= np.median(data.age)].mean()
        x0 = [old, old, 20.0, 0.0]
    else:
        x0 = [start["plateau_ppb"], start["rise_ppb"], start["tau_years"], start["male_offset_ppb"]]
    x0 = x0 if with_sex else x0[:3]
    lower = [-np.inf, -np.inf, TAU_BOUNDS_YEARS[0]] + ([-np.inf] if with_sex else [])
    upper = [np.inf, np.inf, TAU_BOUNDS_YEARS[1]] + ([np.inf] if with_sex else [])
    x0[2] = float(np.clip(x0[2], *TAU_BOUNDS_YEARS))

    def jacobian(x: np.ndarray) -> np.ndarray:
        decay = np.exp(-data.age / x[2])
        columns = [np.ones_like(data.age), -decay, -x[1] * decay * data.age / x[2] ** 2]
        return np.column_stack([*columns, data.male] if with_sex else columns)

    solution = least_squares(
        lambda x: predict(x) - data.value, x0, jac=jacobian, bounds=(lower, upper)
    )
    x = solution.x
    params = {"plateau_ppb": float(x[0]), "rise_ppb": float(x[1]), "tau_years": float(x[2])}
    if with_sex:
        params["male_offset_ppb"] = float(x[3])
    return params, predict(x)


def _fit_spread(data: _Data, residual: np.ndarray, n_mean_params: int) -> tuple[float, float]:
    """SD at the reference age and its slope with age, from scaled absolute residuals."""
    dof = math.sqrt(len(residual) / max(len(residual) - n_mean_params, 1))
    scaled = np.abs(residual) * math.sqrt(math.pi / 2.0) * dof
    design = np.column_stack([np.ones_like(data.age), data.age - REF_AGE_YEARS])
    coef, *_ = np.linalg.lstsq(design, scaled, rcond=None)
    return float(coef[0]), float(coef[1])
