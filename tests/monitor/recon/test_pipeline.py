"""The composed reconstruction on the coarse 2 mm phantom: stages, timing, referencing.

One reconstruction (CSF reference, which also computes the whole-brain offset) keeps this
slow test to a single pipeline run.
"""

from __future__ import annotations

import numpy as np
import pytest

from monitor.phantom import FAST_CONFIG, simulate_phantom
from monitor.recon.pipeline import reconstruct
from monitor.settings import ReconSettings

pytestmark = pytest.mark.slow

SETTINGS = ReconSettings(inversion="tkd", unwrap="laplacian", reference="csf")


def test_pipeline_times_stages_and_reports_both_references():
    phantom = simulate_phantom(FAST_CONFIG, rng=1)
    stages: list[str] = []
    result = reconstruct(phantom.acquisition, SETTINGS, progress=stages.append)
    assert stages == ["mask", "field", "phase_quality", "background", "inversion", "reference"]
    assert set(result.qc["seconds"]) == set(stages)
    assert result.qc["local_field_mask_volume_ml"] <= result.qc["mask_volume_ml"]
    assert result.params == SETTINGS.model_dump(mode="json")
    assert result.chi_ppm.shape == phantom.acquisition.shape
    assert result.reference == "csf"
    assert result.qc["csf_volume_ml"] > 0
    # CSF-referenced map: its whole-brain mean is the difference of the two offsets.
    whole_brain_mean = float(np.mean(result.chi_ppm[result.mask]))
    expected = result.qc["whole_brain_offset_ppm"] - result.qc["csf_offset_ppm"]
    assert whole_brain_mean == pytest.approx(expected, abs=1e-5)
    # Iron-rich pallidum must come out clearly above white matter even on this coarse grid.
    rois = phantom.roi_masks()
    pallidum = result.chi_ppm[rois["globus_pallidus_left"] & result.mask].mean()
    white = result.chi_ppm[rois["white_matter"] & result.mask].mean()
    assert pallidum - white > 0.05
