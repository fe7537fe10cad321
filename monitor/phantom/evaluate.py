"""Agreement of a reconstruction with the phantom's truth, as the monitor will use it: ROI means.

Susceptibility is only known up to a constant, so both maps are referenced to their own mean
over the same region before comparing, i.e. whole-brain referencing as the product reports by
default. That region is the reconstruction mask within the true brain: a magnitude-based mask
may include a rim of CSF and skull whose true susceptibility (bone) is not brain and would
shift the truth's mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from monitor.phantom.simulate import Phantom

DEEP_GREY_MATTER = tuple(
    f"{structure}_{side}"
    for structure in ("thalamus", "caudate", "putamen", "globus_pallidus")
    for side in ("left", "right")
)


@dataclass(frozen=True)
class RoiAgreement:
    """Measured vs true ROI means (ppm, whole-brain referenced) and their linear fit."""

    names: tuple[str, ...]
    measured_ppm: np.ndarray
    true_ppm: np.ndarray
    slope: float
    intercept_ppm: float
    r_squared: float

    @property
    def max_error_ppb(self) -> float:
        return float(np.max(np.abs(self.measured_ppm - self.true_ppm)) * 1000.0)


def roi_agreement(
    phantom: Phantom,
    chi_ppm: np.ndarray,
    mask: np.ndarray,
    structures: Sequence[str] = DEEP_GREY_MATTER,
) -> RoiAgreement:
    """Compare ROI means inside `mask` (the reconstruction's), each map referenced to its mean."""
    mask = np.asarray(mask, dtype=bool) & phantom.brain_mask
    truth = phantom.chi_ppm - phantom.chi_ppm[mask].mean()
    measured_map = chi_ppm - chi_ppm[mask].mean()
    rois = phantom.roi_masks()
    missing = [name for name in structures if not np.any(rois.get(name, False) & mask)]
    if missing:
        raise ValueError(f"structures outside the reconstruction mask: {missing}")
    measured = np.array([measured_map[rois[n] & mask].mean() for n in structures])
    true = np.array([truth[rois[n] & mask].mean() for n in structures])
    slope, intercept = np.polyfit(true, measured, 1)
    residual = measured - (slope * true + intercept)
    r_squared = 1.0 - residual.var() / measured.var()
    return RoiAgreement(
        names=tuple(structures),
        measured_ppm=measured,
        true_ppm=true,
        slope=float(slope),
        intercept_ppm=float(intercept),
        r_squared=float(r_squared),
    )
