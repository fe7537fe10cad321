"""Evidence on simulated cohorts drawn from the normative model (issue 5).

* a site model fitted to 250 simulated controls recovers the generating parameters within
  their bootstrap intervals (checked over several cohorts: a 95 % interval misses 1 in 20);
* 600 simulated MS patients with the seed study's group differences (Zivadinov et al. 2018)
  are flagged far more often than the controls.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from monitor.norms import default_model
from monitor.norms.fit import fit_site_model
from monitor.phantom.norms_cohort import SEED_MS_SHIFT_PPB, simulate_cohort
from monitor.segment.structures import STRUCTURES
from monitor.settings import RiskSettings
from monitor.tracking.risk import StructureEvidence, assess_risk

MODEL = default_model()
N_CONTROLS = 250
N_MS = 600
N_COHORTS = 10
"""Parameters within a curve miss together (plateau, rise and tau trade off), so coverage is
judged over many cohorts rather than one."""
SEED_AGES = (20.0, 70.0)
"""Uniform ages with mean 45, the age at which the default model reproduces the seed means."""
BASAL_GANGLIA_WEIGHTS = {"caudate": 0.35, "putamen": 0.5, "globus_pallidus": 0.15}
"""Volume shares used to pool the nuclei as the seed's single basal-ganglia value (docs)."""


@pytest.mark.slow
def test_site_fit_recovers_generating_parameters_within_bootstrap_intervals() -> None:
    covered = total = 0
    worst_mean_error = 0.0
    for cohort in range(N_COHORTS):
        rows = simulate_cohort(
            MODEL, N_CONTROLS, np.random.default_rng(1000 + cohort), structures=STRUCTURES
        )
        fitted = fit_site_model(rows, n_bootstrap=100, seed=cohort).model
        for structure in STRUCTURES:
            truth, curve = MODEL.curve(structure), fitted.curve(structure)
            for name, (low, high) in curve.ci.items():
                covered += low <= truth.params[name] <= high
                total += 1
            for age in (25.0, 45.0, 65.0):
                standard_error = truth.sd_ppb(age) / math.sqrt(N_CONTROLS)
                error = abs(curve.mean_ppb(age) - truth.mean_ppb(age)) / standard_error
                worst_mean_error = max(worst_mean_error, error)
            assert curve.n_controls == N_CONTROLS
    coverage = covered / total
    print(
        f"parameter coverage {covered}/{total} = {coverage:.2f}; "
        f"worst expected-value error {worst_mean_error:.2f} SD/sqrt(n)"
    )
    # nominal 0.95; 92 intervals give a binomial SD of 0.023, so 0.85 is a 4-SD margin
    assert coverage >= 0.85
    # the SE of a fitted curve value is at most 2 SD/sqrt(n) (at 25 years, near the young end
    # of the controls' ages; measured over 150 simulated cohorts): the worst of 120 values
    # stays within 3.5 such SEs
    assert worst_mean_error < 3.5 * 2.0


def test_simulated_cohorts_reproduce_the_seed_group_means() -> None:
    rng = np.random.default_rng(2018)
    controls = simulate_cohort(
        MODEL, N_CONTROLS, rng, structures=STRUCTURES, age_range_years=SEED_AGES
    )
    patients = simulate_cohort(
        MODEL,
        N_MS,
        rng,
        structures=STRUCTURES,
        age_range_years=SEED_AGES,
        shift_ppb=SEED_MS_SHIFT_PPB,
        prefix="ms",
    )
    for rows, thalamus_ppb, basal_ganglia_ppb in ((controls, -1.1, 54.8), (patients, -7.5, 62.0)):
        means = {s: np.mean([r.mean_ppb for r in rows if r.structure == s]) for s in STRUCTURES}
        pooled = sum(w * means[s] for s, w in BASAL_GANGLIA_WEIGHTS.items())
        assert means["thalamus"] == pytest.approx(thalamus_ppb, abs=1.0)
        assert pooled == pytest.approx(basal_ganglia_ppb, abs=1.5)


def test_seed_ms_cohort_is_flagged_far_more_often_than_controls() -> None:
    rng = np.random.default_rng(600)
    rates = {}
    for group, n, shift in (("controls", N_CONTROLS, None), ("ms", N_MS, SEED_MS_SHIFT_PPB)):
        rows = simulate_cohort(
            MODEL, n, rng, structures=STRUCTURES, age_range_years=SEED_AGES, shift_ppb=shift
        )
        by_subject: dict[str, dict[str, StructureEvidence]] = {}
        for r in rows:
            score = MODEL.score(r.structure, r.side, r.mean_ppb, r.age_years, r.sex)
            by_subject.setdefault(r.subject_id, {})[r.structure] = StructureEvidence(
                r.mean_ppb, score, None
            )
        levels = [assess_risk(ev, RiskSettings()).level for ev in by_subject.values()]
        assert "indeterminate" not in levels
        rates[group] = levels.count("elevated") / len(levels)
    print(f"elevated at a single visit: controls {rates['controls']:.3f}, MS {rates['ms']:.3f}")
    # two one-sided 3-SD rules on healthy people: about 2 x 0.13 % by construction (the rules
    # were 2 SD, ~4.6 %, before the per-visit budget of issue 16); 250 controls are few
    assert rates["controls"] <= 0.08
    assert rates["ms"] >= 2.5 * rates["controls"]
