"""Upsampling by two against SciPy's linear zoom with the same grid convention."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from monitor.recon.resample import doubled


@pytest.mark.parametrize("shape", [(14, 10, 8), (13, 9, 7)])
def test_doubled_matches_scipy_linear_zoom_with_block_centres(shape):
    coarse = np.random.default_rng(3).normal(size=tuple((n + 1) // 2 for n in shape))
    coarse = coarse.astype(np.float32)
    expected = ndimage.zoom(coarse, 2, order=1, mode="nearest", grid_mode=True)
    expected = expected[: shape[0], : shape[1], : shape[2]]
    np.testing.assert_allclose(np.asarray(doubled(coarse, shape)), expected, atol=1e-6)


def test_doubled_keeps_a_linear_ramp_linear_inside():
    ramp = np.arange(6, dtype=np.float32)[:, None, None] * np.ones((6, 4, 4), np.float32)
    fine = np.asarray(doubled(ramp, (12, 8, 8)))
    # Fine voxel i sits at coarse coordinate (i - 0.5) / 2: slope 1/2 away from the edges.
    np.testing.assert_allclose(np.diff(fine[1:-1, 0, 0]), 0.5, atol=1e-6)
    assert fine[0, 0, 0] == fine[1, 0, 0] - 0.25 == 0.0
