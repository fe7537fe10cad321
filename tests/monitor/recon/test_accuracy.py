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
from monitor.recon.geometry_correction import geometry_corrected_map
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


def test_with_the_true_brain_as_model_the_corrected_map_is_the_truth(phantom, result):
    """The geometry correction's premise, on a field simulated by the independent qsm_forward
    with air and bone around the brain: the measurement map (the same total field through
    PDF, inversion and reference) minus the error the same steps make of a model of the brain
    leaves almost nothing when the model is the true brain (measured 0.7 ppb worst, from 10.1
    for the PDF map and 5.3 for the LBV map; with LBV the air's residual stays, 6.3). The
    error map lives inside the mask with zero mean there: it carries the pattern, not the
    reference."""
    model = np.where(phantom.brain_mask, phantom.chi_ppm, 0.0)
    corrected = geometry_corrected_map(model, result, phantom.acquisition, ReconSettings())

    assert not corrected.error_ppm[~corrected.mask].any()
    assert abs(float(corrected.error_ppm[corrected.mask].mean())) < 1e-6

    def worst_ppb(chi_ppm: np.ndarray, mask: np.ndarray) -> float:
        agreement = roi_agreement(phantom, chi_ppm, mask)
        errors = agreement.measured_ppm - agreement.true_ppm
        return float(np.abs(errors - errors.mean()).max() * 1000)

    before = worst_ppb(result.chi_ppm, result.mask)
    after = worst_ppb(corrected.chi_ppm, corrected.mask)
    print(f"worst ROI error, offset removed: map {before:.1f} ppb, corrected {after:.1f} ppb")
    assert after <= 2.0
    assert after <= 0.4 * before


def test_the_correction_needs_to_know_where_the_sources_were(phantom, result):
    """A result without its source mask cannot be modelled: refused, not guessed."""
    from dataclasses import replace

    with pytest.raises(ValueError, match="where its sources were"):
        geometry_corrected_map(
            phantom.chi_ppm, replace(result, source_mask=None), phantom.acquisition, ReconSettings()
        )
