"""Spatial and temporal unwrapping against phases wrapped from a known field."""

import jax.numpy as jnp
import numpy as np
import pytest
import qsm_forward

from monitor.recon.unwrap import (
    edge_quality,
    laplacian_unwrap,
    romeo_unwrap,
    temporal_unwrap,
    wrap,
)

N = 48
VOXEL_MM = (1.0, 1.0, 1.0)
NOISE_RAD = 0.05
GRID = np.meshgrid(*[np.arange(N) - (N - 1) / 2] * 3, indexing="ij")


def _ellipsoid(a: float, b: float, c: float) -> np.ndarray:
    x, y, z = GRID
    return x**2 / a**2 + y**2 / b**2 + z**2 / c**2 < 1


MASK = _ellipsoid(17, 15, 13)


@pytest.fixture(scope="module")
def head_field_ppm() -> np.ndarray:
    """Air-tissue field of an ellipsoidal head with a paramagnetic inclusion (forward model by
    qsm-forward, independent of this code), zero mean in the mask."""
    x, y, z = GRID
    chi = np.where(_ellipsoid(20, 18, 16), 0.0, 9.4)
    chi[(x - 4) ** 2 + (y + 3) ** 2 + z**2 < 36] += 0.4
    field = qsm_forward.generate_field(chi, voxel_size=list(VOXEL_MM), B0_dir=[0, 0, 1])
    return field - field[MASK].mean()


def _max_in_mask_step(phase: np.ndarray) -> float:
    steps = []
    for axis in range(3):
        both = np.logical_and(np.delete(MASK, -1, axis), np.delete(MASK, 0, axis))
        steps.append(np.abs(np.diff(phase, axis=axis))[both].max())
    return float(max(steps))


def _wrapped_with_noise(true_rad: np.ndarray, seed: int) -> np.ndarray:
    """Wrapped noisy phase inside the mask, uniform random phase (pure noise) outside."""
    rng = np.random.default_rng(seed)
    noisy = np.angle(np.exp(1j * (true_rad + NOISE_RAD * rng.standard_normal(true_rad.shape))))
    outside = rng.uniform(-np.pi, np.pi, true_rad.shape)
    return np.where(MASK, noisy, outside).astype(np.float32)


def _romeo(phase: np.ndarray, mask: np.ndarray = MASK) -> np.ndarray:
    magnitude = jnp.asarray(np.where(mask, 1.0, 0.01), jnp.float32)
    quality = edge_quality(
        jnp.asarray(phase), magnitude, jnp.asarray(mask), jnp.asarray(phase), 1.0, 1.0
    )
    return romeo_unwrap(phase, np.asarray(quality), mask)


def _laplacian(phase: np.ndarray) -> np.ndarray:
    return np.asarray(laplacian_unwrap(jnp.asarray(phase), jnp.asarray(MASK), VOXEL_MM))


def _discrete_laplacian(volume: np.ndarray) -> np.ndarray:
    return sum(np.roll(volume, 1, a) + np.roll(volume, -1, a) - 2 * volume for a in range(3))


@pytest.mark.slow
def test_romeo_recovers_steep_field_exactly_where_laplacian_degrades(head_field_ppm):
    x, y, _ = GRID
    shim_residual = 0.6 * x + 0.02 * x * y  # harmonic, many wraps, like a poor shim
    true = head_field_ppm * (2.0 / _max_in_mask_step(head_field_ppm)) + shim_residual
    assert _max_in_mask_step(true) > 1.8  # steep: half-way to the pi limit of any method
    assert np.ptp(true[MASK]) > 6 * np.pi  # many wraps, so the test can fail
    phase = _wrapped_with_noise(true, seed=1)

    error = (_romeo(phase) - true)[MASK]
    constant = np.median(error)
    assert abs(constant / (2 * np.pi) - round(constant / (2 * np.pi))) < 0.01
    assert np.abs(error - constant).max() < 6 * NOISE_RAD

    laplacian_error = (_laplacian(phase) - true)[MASK]
    assert np.std(laplacian_error) > 5 * np.std(error)


@pytest.mark.slow
def test_laplacian_keeps_the_laplacian_of_a_wrapped_field(head_field_ppm):
    x, y, z = GRID
    curved = 0.04 * (x**2 + y**2 + z**2)  # not harmonic: the part Laplacian unwrapping keeps
    true = head_field_ppm * (1.5 / _max_in_mask_step(head_field_ppm)) + curved
    phase = _wrapped_with_noise(true, seed=2)
    interior = _ellipsoid(14, 12, 10)
    # mean |discrete Laplacian| of white noise: sigma * sqrt(42) * sqrt(2/pi)
    noise_only = NOISE_RAD * np.sqrt(42) * np.sqrt(2 / np.pi)
    wrapped_curvature = np.abs(_discrete_laplacian(phase - true)[interior]).mean()
    assert wrapped_curvature > 5 * noise_only  # the interior really contains wraps
    error_curvature = np.abs(_discrete_laplacian(_laplacian(phase) - true)[interior]).mean()
    assert error_curvature < 1.1 * noise_only


def test_laplacian_recovers_field_flat_at_the_mask_edge_up_to_a_constant():
    x, y, z = GRID
    true = 12 * np.exp(-(x**2 + y**2 + z**2) / (2 * 4.0**2))  # 2 wraps, vanishing at the edge
    phase = _wrapped_with_noise(true, seed=3)
    error = (_laplacian(phase) - true)[MASK]
    assert np.sqrt(np.mean((error - error.mean()) ** 2)) < 0.1


def test_romeo_unwraps_every_mask_component():
    x, y, z = GRID
    left = (x + 12) ** 2 + y**2 + z**2 < 8**2
    right = (x - 12) ** 2 + y**2 + z**2 < 8**2
    mask = left | right
    true = 0.9 * y + np.where(right, 0.6 * z, 0.0)
    rng = np.random.default_rng(4)
    phase = np.angle(np.exp(1j * (true + NOISE_RAD * rng.standard_normal(true.shape))))
    unwrapped = _romeo(phase.astype(np.float32), mask)
    for part in (left, right):
        error = (unwrapped - true)[part]
        assert np.abs(error - np.median(error)).max() < 6 * NOISE_RAD
    assert np.array_equal(unwrapped[~mask], phase[~mask].astype(np.float32))


def test_edge_quality_is_zero_outside_mask_and_low_on_noise():
    rng = np.random.default_rng(5)
    x, _, _ = GRID
    phase = np.where(x < 0, 0.2 * GRID[1], rng.uniform(-np.pi, np.pi, x.shape))
    phase = jnp.asarray(phase, jnp.float32)
    quality = np.asarray(edge_quality(phase, jnp.ones(x.shape), jnp.asarray(MASK), phase, 1.0, 1.0))
    assert np.all(quality[:, ~MASK] == 0)
    interior = _ellipsoid(15, 13, 11)  # edges whose neighbour is also inside the mask
    smooth, noisy = interior & (x < -2), interior & (x > 2)
    assert quality[1][smooth].mean() > 0.9
    assert quality[1][noisy].mean() < 0.6


def test_temporal_unwrap_adds_the_nearest_multiple_of_two_pi():
    true = jnp.asarray([0.3, 7.0, -12.0, 25.1])
    predicted = true + jnp.asarray([0.5, -0.9, 2.0, -3.0])  # all within pi of the truth
    result = temporal_unwrap(wrap(true), predicted)
    np.testing.assert_allclose(np.asarray(result), np.asarray(true), atol=1e-5)
