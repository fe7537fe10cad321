"""Brain mask on a synthetic head: bright scalp, dark skull, brain with dark nuclei inside."""

import numpy as np
import pytest
from scipy import ndimage

from monitor.recon.mask import (
    brain_mask,
    erode_mm,
    fill_holes,
    mask_volume_ml,
    phase_quality_mask,
    root_sum_of_squares,
    within_ball,
)
from monitor.settings import ReconSettings

VOXEL_MM = (2.0, 2.0, 2.5)
SHAPE = (96, 104, 80)
TE_S = np.array([0.004, 0.012, 0.020, 0.028])


def _ellipsoid_mm(semi_axes_mm, centre_mm=(0.0, 0.0, 0.0)) -> np.ndarray:
    axes = [(np.arange(n) - (n - 1) / 2) * v for n, v in zip(SHAPE, VOXEL_MM, strict=True)]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    (a, b, c), (cx, cy, cz) = semi_axes_mm, centre_mm
    return ((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 + ((z - cz) / c) ** 2 < 1


BRAIN = _ellipsoid_mm((62, 74, 52))
SKULL_OUTER = _ellipsoid_mm((70, 82, 60))
HEAD = _ellipsoid_mm((76, 88, 66))
SCALP = HEAD & ~SKULL_OUTER


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


def _head_magnitude(seed: int, bridge: bool = False) -> np.ndarray:
    """Multi-echo magnitude with Rician background noise; scalp (fat) brighter than brain,
    skull nearly void, deep nuclei dark at late echoes (high R2*, iron)."""
    proton_density = np.where(BRAIN, 0.8, 0.0) + np.where(SCALP, 1.0, 0.0)
    r2star = np.where(BRAIN, 20.0, 0.0) + np.where(SCALP, 15.0, 0.0)
    nuclei = _ellipsoid_mm((10, 8, 8), (16, 6, -4)) | _ellipsoid_mm((10, 8, 8), (-16, 6, -4))
    r2star = np.where(nuclei, 120.0, r2star)
    if bridge:  # a bright tube through the skull (orbit/optic nerve-like)
        tube = _ellipsoid_mm((3.5, 60, 3.5), (0, 70, 0))
        proton_density = np.where(tube & ~BRAIN, 0.9, proton_density)
        r2star = np.where(tube & ~BRAIN, 20.0, r2star)
    signal = proton_density[..., None] * np.exp(-TE_S * r2star[..., None])
    rng = np.random.default_rng(seed)
    noise = 0.03 * rng.standard_normal((2, *signal.shape))
    return np.abs(signal + noise[0] + 1j * noise[1])


@pytest.mark.parametrize("bridge", [False, True])
def test_mask_matches_brain_and_excludes_scalp(bridge):
    settings = ReconSettings(mask_erode_mm=0.0)
    mask = brain_mask(_head_magnitude(seed=1, bridge=bridge), VOXEL_MM, settings)
    assert _dice(mask, BRAIN) > 0.9
    assert not np.any(mask & SCALP)
    assert mask[_ellipsoid_mm((10, 8, 8), (16, 6, -4))].all()  # dark nuclei filled back


def test_configured_erosion_and_threshold_are_applied():
    magnitude = _head_magnitude(seed=2)
    settings = ReconSettings(mask_erode_mm=4.0, mask_threshold_fraction=0.3)
    mask = brain_mask(magnitude, VOXEL_MM, settings)
    expected = erode_mm(BRAIN, 4.0, VOXEL_MM)
    assert _dice(mask, expected) > 0.9
    assert np.count_nonzero(mask & ~BRAIN) == 0


def test_blank_image_is_refused():
    with pytest.raises(ValueError, match="zero everywhere"):
        brain_mask(np.zeros((*SHAPE, 2)), VOXEL_MM, ReconSettings())


def test_phase_quality_mask_trims_unreliable_rim_and_keeps_inner_holes_filled():
    reliability = np.where(erode_mm(BRAIN, 6.0, VOXEL_MM), 0.9, 0.02)
    vein = _ellipsoid_mm((4, 4, 4))
    reliability[vein] = 0.0
    refined = phase_quality_mask(BRAIN, reliability)
    assert _dice(refined, erode_mm(BRAIN, 6.0, VOXEL_MM)) > 0.98
    assert refined[vein].all()


def test_mask_volume_is_counted_in_millilitres():
    mask = np.zeros((10, 10, 10), bool)
    mask[:4, :5, :2] = True  # 40 voxels of 2 x 2 x 2.5 mm = 400 mm^3
    assert mask_volume_ml(mask, VOXEL_MM) == pytest.approx(0.4)


@pytest.mark.parametrize("density", [0.3, 0.6, 0.9])
def test_fill_holes_matches_scipy_on_random_masks(density):
    """Random masks hold enclosed background pockets of every shape, touching faces or not."""
    mask = np.random.default_rng(7).random((23, 17, 11)) < density
    filled = fill_holes(mask)
    np.testing.assert_array_equal(filled, ndimage.binary_fill_holes(mask))
    assert filled.sum() >= mask.sum()


def test_fill_holes_fills_an_enclosed_cavity_only():
    shell = np.zeros((12, 12, 12), dtype=bool)
    shell[2:10, 2:10, 2:10] = True
    shell[4:8, 4:8, 4:8] = False  # enclosed cavity
    shell[0:3, 5, 5] = False  # a tunnel from the face into the shell wall, not the cavity
    filled = fill_holes(shell)
    assert filled[4:8, 4:8, 4:8].all()
    assert not filled[0:3, 5, 5].any()
    assert not fill_holes(np.zeros((3, 4, 5), dtype=bool)).any()
    assert fill_holes(np.ones((3, 4, 5), dtype=bool)).all()


def test_root_sum_of_squares_equals_the_reduction_over_echoes() -> None:
    magnitude = np.random.default_rng(5).random((9, 8, 7, 5)).astype(np.float32)
    expected = np.sqrt(np.sum(np.square(magnitude), axis=-1))
    assert np.array_equal(root_sum_of_squares(magnitude), expected)
    assert np.array_equal(root_sum_of_squares(magnitude[..., :1]), magnitude[..., 0])


@pytest.mark.parametrize("seed", range(6))
def test_within_ball_is_the_distance_transform_thresholded_at_the_radius(seed: int) -> None:
    rng = np.random.default_rng(seed)
    mask = rng.random((23, 19, 17)) < rng.uniform(0.002, 0.05)
    voxel_mm = tuple(float(v) for v in rng.choice([1.0, 1.5, 2.0, 2.5], 3))
    radius_mm = float(rng.uniform(2.0, 9.0))
    expected = ndimage.distance_transform_edt(~mask, sampling=voxel_mm) <= radius_mm
    assert np.array_equal(within_ball(mask, radius_mm, voxel_mm), expected)
