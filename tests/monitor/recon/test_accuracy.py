"""End-to-end accuracy on the realistic oblique 1x1x2 mm head phantom (slow).

Raw wrapped multi-echo phase goes through the DEFAULT pipeline; the field was simulated by the
independent qsm_forward model. ROI means are compared after referencing both maps to their
mean over the same region (reconstruction mask within the true brain), i.e. whole-brain
referencing, as reported by the product.
"""

from __future__ import annotations

import numpy as np
import pytest
from qsm_ci.qsm_eval import nrmse_challenge

from monitor.phantom.evaluate import roi_agreement
from monitor.recon.dipole import invert
from monitor.recon.pipeline import reconstruct
from monitor.settings import ReconSettings

pytestmark = pytest.mark.slow

# The targets below are the product specification, asserted as such. Measured with the current
# defaults (LBV, TV with the data term inside the mask, lambda 2e-4, 10 iterations over-relaxed
# by 1.5; docs/reconstruction.md "Measured accuracy"): whole-brain NRMSE 51.9 %, worst ROI
# error 5.3 ppb after the mean offset, 8.0 ppb raw; on a second subject (warp_seed=1) 53.1 %,
# 6.3 / 6.8 ppb. Inversion-alone NRMSE was 20.2 % (20.7 % on warp 1) with 15 plain iterations.
# The NRMSE margin is thin (~2-3 points).


@pytest.fixture(scope="module")
def phantom(realistic_phantom):
    return realistic_phantom


@pytest.fixture(scope="module")
def result(phantom):
    return reconstruct(phantom.acquisition, ReconSettings())


def test_deep_grey_matter_is_linear_in_truth(phantom, result):
    agreement = roi_agreement(phantom, result.chi_ppm, result.mask)
    assert agreement.slope >= 0.85
    assert agreement.r_squared >= 0.97


def test_deep_grey_matter_correlates_and_orders_iron(phantom, result):
    agreement = roi_agreement(phantom, result.chi_ppm, result.mask)
    assert agreement.r_squared >= 0.97
    assert agreement.slope >= 0.75
    assert agreement.max_error_ppb <= 30.0


def test_every_deep_grey_roi_within_10_ppb(phantom, result):
    agreement = roi_agreement(phantom, result.chi_ppm, result.mask)
    assert agreement.max_error_ppb <= 10.0


def test_default_meets_the_whole_brain_targets(phantom, result):
    """Issue 12's accuracy targets, ROI errors after removing the mean offset as the issue
    defines them."""
    agreement = roi_agreement(phantom, result.chi_ppm, result.mask)
    errors = agreement.measured_ppm - agreement.true_ppm
    nrmse, _ = nrmse_challenge(result.chi_ppm, phantom.chi_ppm, result.mask & phantom.brain_mask)
    assert nrmse <= 55.0
    assert agreement.slope >= 0.9 and agreement.r_squared >= 0.98
    assert np.abs(errors - errors.mean()).max() * 1000 <= 8.0


def test_pipeline_reports_timing_and_mask(result):
    assert set(result.qc["seconds"]) >= {"mask", "field", "background", "inversion", "reference"}
    assert 1200 < result.qc["mask_volume_ml"] < 2000
    assert abs(result.chi_ppm[result.mask].mean()) < 1e-6
    assert result.params["inversion"] == ReconSettings().inversion


def test_dipole_inversion_alone_from_true_local_field(phantom):
    acq = phantom.acquisition
    chi = invert(
        phantom.local_field_ppm,
        phantom.brain_mask,
        acq.voxel_mm,
        acq.b0_dir_voxel,
        ReconSettings(),
        magnitude=np.sqrt(np.sum(acq.magnitude**2, axis=-1)),
    )
    nrmse, _ = nrmse_challenge(chi, phantom.chi_ppm, phantom.brain_mask)
    assert nrmse <= 24.0
