"""Site model fitting: sex covariate, age bands, and inputs that cannot support a curve."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from monitor.norms import NormativeModel, NormsError, default_model
from monitor.norms.fit import age_band_counts, fit_site_model
from monitor.phantom.norms_cohort import simulate_cohort


def model_with_male_offset(offset_ppb: float) -> NormativeModel:
    base = default_model()
    curve = base.curve("putamen")
    shifted = dataclasses.replace(curve, params={**curve.params, "male_offset_ppb": offset_ppb})
    return dataclasses.replace(base, curves={("putamen", "bilateral"): shifted})


def test_sex_covariate_is_fitted_when_both_sexes_are_present() -> None:
    truth = model_with_male_offset(6.0)
    rows = simulate_cohort(truth, 300, np.random.default_rng(5), structures=("putamen",))
    curve = fit_site_model(rows, n_bootstrap=50, seed=1).model.curve("putamen")
    assert curve.sex_supported
    low, high = curve.ci["male_offset_ppb"]
    assert low <= 6.0 <= high
    assert low > 0.0  # the difference is detected, not just tolerated


def test_one_sex_only_fits_no_offset_and_says_so() -> None:
    rows = [
        dataclasses.replace(r, sex="F")
        for r in simulate_cohort(
            default_model(), 40, np.random.default_rng(6), structures=("thalamus",)
        )
    ]
    report = fit_site_model(rows, n_bootstrap=20)
    curve = report.model.curve("thalamus")
    assert not curve.sex_supported and curve.params["male_offset_ppb"] == 0.0
    assert any("no sex covariate" in warning for warning in report.warnings)


def test_age_bands_count_every_control_once() -> None:
    counts = age_band_counts([17.9, 18.0, 29.99, 30.0, 79.0, 80.0, 95.0])
    assert counts == {
        "<18": 1,
        "18-29": 2,
        "30-39": 1,
        "40-49": 0,
        "50-59": 0,
        "60-69": 0,
        "70-79": 1,
        "80+": 2,
    }


def test_controls_of_one_age_cannot_give_an_age_curve() -> None:
    rows = simulate_cohort(
        default_model(),
        30,
        np.random.default_rng(7),
        structures=("caudate",),
        age_range_years=(40.0, 45.0),
    )
    with pytest.raises(NormsError, match=r"span [45]\.\d years of age; .* at least 10"):
        fit_site_model(rows, n_bootstrap=20)


def test_too_few_resamples_is_refused() -> None:
    rows = simulate_cohort(default_model(), 30, np.random.default_rng(8), structures=("caudate",))
    with pytest.raises(NormsError, match="bootstrap"):
        fit_site_model(rows, n_bootstrap=5)
