"""The fixed-size block the stages after the mask work on: placement, fallback, and that
cropping to it leaves the map as the whole grid would give it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from qsm_ci.qsm_eval import nrmse_challenge

import monitor.recon.brain_box as brain_box_module
from monitor.phantom import FAST_CONFIG, simulate_phantom
from monitor.phantom.evaluate import roi_agreement
from monitor.recon.brain_box import BOX_MM, box_shape, brain_box
from monitor.recon.pipeline import reconstruct
from monitor.recon.warmup import synthetic_acquisition
from monitor.settings import ReconSettings


def _ellipsoid(shape, centre, radii) -> np.ndarray:
    grid = np.indices(shape, dtype=float)
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True)) < 1


def test_box_shape_depends_on_the_grid_only():
    assert box_shape((256, 256, 128), (1.0, 1.0, 1.0)) == (210, 210, 128)
    assert box_shape((160, 192, 64), (1.0, 1.0, 2.0)) == (160, 192, 64)
    assert box_shape((300, 100, 90), (0.8, 2.5, 3.0)) == (263, 84, 70)


@pytest.mark.parametrize("centre", [(128, 128, 64), (60, 200, 40), (200, 45, 100)])
def test_box_holds_the_whole_mask_wherever_the_head_sits(centre):
    shape, voxel = (256, 256, 128), (1.0, 1.0, 1.0)
    mask = _ellipsoid(shape, centre, (45, 60, 40))
    box = brain_box(mask, voxel)
    assert tuple(s.stop - s.start for s in box) == box_shape(shape, voxel)
    assert all(s.start >= 0 and s.stop <= n for s, n in zip(box, shape, strict=True))
    assert mask[box].sum() == mask.sum()


def test_an_axis_the_mask_overfills_is_kept_whole():
    shape, voxel = (256, 256, 128), (1.0, 1.0, 1.0)
    mask = _ellipsoid(shape, (128, 128, 64), (120, 60, 40))  # 240 mm along x
    box = brain_box(mask, voxel)
    assert box[0] == slice(0, 256)
    assert box[1].stop - box[1].start == 210
    assert mask[box].sum() == mask.sum()
    assert brain_box(np.zeros(shape, bool), voxel) == (slice(0, 256), slice(0, 256), slice(0, 128))


def test_warmup_head_fits_the_box_so_warmup_compiles_its_shape():
    shape, voxel = (256, 256, 128), (1.0, 1.0, 1.0)
    acq = synthetic_acquisition(shape, 2, voxel)
    head = acq.magnitude[..., 0] > 0.2
    assert tuple(s.stop - s.start for s in brain_box(head, voxel)) == (210, 210, 128)


@pytest.mark.slow
def test_cropping_to_the_box_keeps_the_map_as_accurate_as_the_whole_grid(monkeypatch):
    """A 240 x 240 mm field of view (box 210 mm): the box crops both in-plane axes.

    The FFT domain differs, so the maps differ slightly (measured: 4.4 ppb rms, ROI means
    within 1.6 ppb); what must not change is their accuracy against the truth.
    """
    config = dataclasses.replace(FAST_CONFIG, shape=(120, 120, 80))
    phantom = simulate_phantom(config, rng=4)
    settings = ReconSettings(inversion="tkd")
    cropped = reconstruct(phantom.acquisition, settings)
    assert cropped.qc["box_voxels"] == [105, 105, 80]
    monkeypatch.setattr(brain_box_module, "BOX_MM", 10 * BOX_MM)
    whole = reconstruct(phantom.acquisition, settings)
    assert whole.qc["box_voxels"] == [120, 120, 80]
    assert cropped.chi_ppm.shape == phantom.acquisition.shape
    np.testing.assert_array_equal(cropped.mask, whole.mask)
    truth_mask = whole.mask & phantom.brain_mask
    nrmse_cropped, _ = nrmse_challenge(cropped.chi_ppm, phantom.chi_ppm, truth_mask)
    nrmse_whole, _ = nrmse_challenge(whole.chi_ppm, phantom.chi_ppm, truth_mask)
    assert nrmse_cropped <= nrmse_whole + 1.0
    roi_cropped = roi_agreement(phantom, cropped.chi_ppm, cropped.mask)
    roi_whole = roi_agreement(phantom, whole.chi_ppm, whole.mask)
    np.testing.assert_allclose(roi_cropped.measured_ppm, roi_whole.measured_ppm, atol=0.003)
    assert _worst_ppb(roi_cropped) <= _worst_ppb(roi_whole) + 1.0


def _worst_ppb(agreement) -> float:
    """Largest ROI error after the mean offset, ppb."""
    error = 1000.0 * (agreement.measured_ppm - agreement.true_ppm)
    return float(np.abs(error - error.mean()).max())
