"""The registration's chi contrast drops smooth offsets and keeps nuclei edges."""

import numpy as np

from monitor.segment.local_contrast import local_contrast

VOXEL_MM = (1.0, 1.0, 2.0)


def _ball(shape: tuple[int, int, int], centre: tuple[float, ...], radius_mm: float) -> np.ndarray:
    grid = np.indices(shape).astype(float)
    distance = sum(((g - c) * v) ** 2 for g, c, v in zip(grid, centre, VOXEL_MM, strict=True))
    return np.sqrt(distance) <= radius_mm


def test_a_constant_brain_has_no_contrast_up_to_its_edge():
    """Normalised convolution: outside voxels do not dilute the mean at the brain's edge."""
    brain = _ball((64, 64, 32), (32, 32, 16), 28.0)
    contrast = local_contrast(np.where(brain, 0.05, 0.0), brain, 10.0, VOXEL_MM)
    assert np.abs(contrast).max() < 1e-6
    assert np.all(contrast[~brain] == 0.0)


def test_a_smooth_offset_is_mostly_removed():
    """An offset of +-15 ppb varying over ~60 mm (like LBV's boundary loss) shrinks to a few
    ppb where the deep grey matter lies; at the brain's edge a trend is only halved (the mean
    there comes from one side), which the deep-grey-matter region never reaches."""
    shape = (64, 64, 32)
    brain = _ball(shape, (32, 32, 16), 28.0)
    x = np.indices(shape)[0] * VOXEL_MM[0]
    smooth_error = np.where(brain, 0.015 * np.sin(2 * np.pi * x / 120.0), 0.0)
    contrast = local_contrast(smooth_error, brain, 10.0, VOXEL_MM)
    deep = _ball(shape, (32, 32, 16), 18.0)
    assert np.abs(smooth_error[deep]).max() > 0.01
    assert np.abs(contrast[deep]).max() < 0.003
    assert np.abs(contrast[brain]).max() < 0.5 * np.abs(smooth_error[brain]).max()


def test_a_nucleus_keeps_its_edge():
    shape = (64, 64, 32)
    brain = _ball(shape, (32, 32, 16), 28.0)
    nucleus = _ball(shape, (32, 32, 16), 5.0)
    contrast = local_contrast(np.where(nucleus, 0.15, 0.0), brain, 10.0, VOXEL_MM)
    ring = _ball(shape, (32, 32, 16), 9.0) & ~_ball(shape, (32, 32, 16), 7.0)
    assert contrast[nucleus].mean() - contrast[ring].mean() > 0.1
