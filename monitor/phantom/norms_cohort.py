"""Draw simulated cohorts from a normative model: the evidence for fitting, change and risk.

Controls are drawn exactly from the model (mean curve plus normal spread), so a fitted site
model can be checked against known generating parameters. Patients are controls shifted by
fixed group differences, e.g. the seed study's MS minus control means.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from monitor.norms.controls_csv import ControlRow
from monitor.norms.model import NormativeModel

SEED_MS_SHIFT_PPB: Mapping[str, float] = {
    "thalamus": -7.5 - (-1.1),
    "caudate": 62.0 - 54.8,
    "putamen": 62.0 - 54.8,
    "globus_pallidus": 62.0 - 54.8,
}
"""MS minus control means in Zivadinov et al. (Radiology 2018): thalamus -7.5 vs -1.1 ppb,
basal ganglia 62 vs 54.8 ppb (pooled; applied to each basal ganglia nucleus)."""


def simulate_cohort(
    model: NormativeModel,
    n_subjects: int,
    rng: np.random.Generator,
    *,
    structures: Sequence[str],
    side: str = "bilateral",
    age_range_years: tuple[float, float] = (20.0, 75.0),
    shift_ppb: Mapping[str, float] | None = None,
    prefix: str = "c",
) -> list[ControlRow]:
    """Subjects with uniform ages and a 60:40 female:male mix (as in MS cohorts)."""
    ages = rng.uniform(*age_range_years, n_subjects)
    sexes = rng.choice(["F", "M"], size=n_subjects, p=[0.6, 0.4])
    rows = []
    for index, (age, sex) in enumerate(zip(ages, sexes, strict=True)):
        for structure in structures:
            curve = model.curve(structure, side)
            if curve is None:
                raise ValueError(f"model has no {structure} {side} curve to simulate from")
            mean = curve.mean_ppb(age, sex) + (shift_ppb or {}).get(structure, 0.0)
            value = rng.normal(mean, curve.sd_ppb(age))
            rows.append(
                ControlRow(f"{prefix}{index:04d}", float(age), str(sex), structure, side, value)
            )
    return rows
