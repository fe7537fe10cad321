"""Rounding in a DICOM slice spacing must not decide masks, bands or grid sizes.

Each test runs one of our "within r mm" rules on a grid of 2 mm slices as exact, and as
DICOM positions give it back (2.000000001 mm, 1.99999 mm): the answers must be identical. The
first spacing is the one read back from a simulated study that moved deep grey matter means
by up to 10 ppb before the rule had a tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest

from monitor.grid_distance import steps_covering, steps_within, within_mm, within_mm_squared
from monitor.recon.brain_box import box_shape
from monitor.recon.fourier import padded_shape, smv_kernel
from monitor.recon.mask import dilate_mm, erode_mm
from monitor.segment.border import refine_borders
from monitor.segment.refinement import clamp_to_support

EXACT = (1.0, 1.0, 2.0)
ROUNDED = [(1.0, 1.0, 2.000000001), (1.0, 1.0, 1.99999), (0.9999999, 1.0000001, 2.0000001)]


def _blob(seed: int, shape=(40, 44, 24)) -> np.ndarray:
    """A random smooth-edged solid, so erosions and dilations have points at every distance."""
    rng = np.random.default_rng(seed)
    axes = [np.arange(n) - n / 2 for n in shape]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    radius = 12 + 2 * np.sin(x / 3 + rng.uniform(0, 6)) + 2 * np.cos(y / 4 + rng.uniform(0, 6))
    return x**2 + y**2 + (2 * z) ** 2 < radius**2


def test_points_at_the_radius_count_and_points_clearly_beyond_do_not() -> None:
    assert within_mm(np.array([2.0, 2.000000001, 2.001, 2.01]), 2.0).tolist() == [
        True,
        True,
        True,
        False,
    ]
    assert within_mm_squared(np.array([16.0, 16.0000001, 16.5]), 4.0).tolist() == [
        True,
        True,
        False,
    ]
    assert [steps_within(2.0, v) for v in (2.0, 2.000000001, 1.99999, 2.1)] == [1, 1, 1, 0]
    assert [steps_covering(20.0, v) for v in (2.0, 2.000000001, 1.99999, 1.9)] == [10, 10, 10, 11]


@pytest.mark.parametrize("voxel_mm", ROUNDED)
@pytest.mark.parametrize("radius_mm", [2.0, 4.0, 8.0])
def test_erosion_and_dilation_ignore_rounding_of_the_spacing(voxel_mm, radius_mm) -> None:
    blob = _blob(int(radius_mm))
    assert np.array_equal(erode_mm(blob, radius_mm, voxel_mm), erode_mm(blob, radius_mm, EXACT))
    assert np.array_equal(dilate_mm(blob, radius_mm, voxel_mm), dilate_mm(blob, radius_mm, EXACT))


@pytest.mark.parametrize("voxel_mm", ROUNDED)
def test_grid_sizes_and_sphere_kernels_ignore_rounding_of_the_spacing(voxel_mm) -> None:
    shape = (160, 192, 70)
    assert padded_shape(shape, voxel_mm) == padded_shape(shape, EXACT)
    assert box_shape((256, 256, 128), voxel_mm) == box_shape((256, 256, 128), EXACT)
    padded = padded_shape(shape, EXACT)
    for radius_mm in (4.0, 6.0, 8.0):
        assert np.allclose(
            smv_kernel(padded, voxel_mm, radius_mm), smv_kernel(padded, EXACT, radius_mm), atol=1e-6
        )


@pytest.mark.parametrize("voxel_mm", ROUNDED)
def test_label_clamp_and_border_band_ignore_rounding_of_the_spacing(voxel_mm) -> None:
    support = _blob(3)
    labels = np.where(_blob(4) | support, 1, 0).astype(np.int16)
    probabilities = support[None].astype(np.float32)
    exact, removed = clamp_to_support(labels, probabilities, (1,), 0.5, 6.0, EXACT)
    assert sum(removed.values()) > 0  # the 6 mm reach is what decides here
    rounded, _ = clamp_to_support(labels, probabilities, (1,), 0.5, 6.0, voxel_mm)
    assert np.array_equal(exact, rounded)

    halves = np.arange(labels.shape[0])[:, None, None] < labels.shape[0] // 2
    two = np.where(support, np.where(halves, 1, 2), 0).astype(np.int16)
    priors = np.stack([support & halves, support & ~halves]).astype(np.float32)
    chi = np.random.default_rng(5).normal(0.0, 0.01, two.shape).astype(np.float32)
    chi += 0.1 * np.where(halves, 1.0, 0.0) * _blob(4)
    args = (two, priors, (1, 2), chi, np.ones(two.shape, dtype=bool))
    assert np.array_equal(
        refine_borders(*args, EXACT, 4.0, 0.5), refine_borders(*args, voxel_mm, 4.0, 0.5)
    )
