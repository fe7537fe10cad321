"""Multi-echo field mapping against a known field, signal simulated by qsm-forward."""

import numpy as np
import pytest
import qsm_forward
from scipy import ndimage

from monitor.recon.field_map import estimate_total_field, hz_to_ppm
from monitor.types import GYROMAGNETIC_HZ_PER_T

N = 40
VOXEL_MM = (1.0, 1.0, 1.0)
B0_TESLA = 3.0
TE_S = (0.004, 0.008, 0.012, 0.016, 0.020)
GRID = np.meshgrid(*[np.arange(N) - (N - 1) / 2] * 3, indexing="ij")
QSM_FORWARD_HZ_PER_PPM = 42.58 * B0_TESLA  # qsm-forward's own constant


def _ellipsoid(a: float, b: float, c: float) -> np.ndarray:
    x, y, z = GRID
    return x**2 / a**2 + y**2 / b**2 + z**2 / c**2 < 1


MASK = _ellipsoid(15, 13, 11)
INTERIOR = _ellipsoid(12, 10, 8)


@pytest.fixture(scope="module")
def field_hz() -> np.ndarray:
    """Air-tissue field plus an iron-like inclusion, ~150 Hz range, zero mean in the mask."""
    x, y, z = GRID
    chi = np.where(_ellipsoid(17, 15, 13), 0.0, 9.4)
    chi[(x - 3) ** 2 + (y + 2) ** 2 + z**2 < 16] += 0.5
    field_ppm = qsm_forward.generate_field(chi, voxel_size=list(VOXEL_MM), B0_dir=[0, 0, 1])
    field_ppm = 3.0 * (field_ppm - field_ppm[MASK].mean())
    return field_ppm * QSM_FORWARD_HZ_PER_PPM


def _acquire(field_hz: np.ndarray, seed: int, offset_rad: np.ndarray | float = 0.0):
    """Noisy multi-echo magnitude and phase (noise sigma 1% of the first echo)."""
    rng = np.random.default_rng(seed)
    proton_density = np.where(MASK, 1.0, 0.0)
    echoes = []
    for te in TE_S:
        signal = qsm_forward.generate_signal(
            field_hz / QSM_FORWARD_HZ_PER_PPM,
            B0=B0_TESLA,
            TR=1,
            TE=te,
            flip_angle=90,
            phase_offset=offset_rad,
            R1=1,
            R2star=25.0,
            M0=proton_density,
        )
        noise = rng.standard_normal((2, *signal.shape)) * 0.01 * np.abs(signal).max()
        echoes.append(signal + noise[0] + 1j * noise[1])
    stacked = np.stack(echoes, axis=-1)
    return np.abs(stacked), np.angle(stacked)


def _smooth_offset(seed: int) -> np.ndarray:
    """Receive-coil-like phase offset: smooth, several radians, unrelated to the field."""
    noise = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal((N,) * 3), 6)
    return 2.5 * noise / noise.std()


def _discrete_laplacian(volume: np.ndarray) -> np.ndarray:
    return sum(np.roll(volume, 1, a) + np.roll(volume, -1, a) - 2 * volume for a in range(3))


@pytest.mark.slow
def test_romeo_recovers_known_field_with_random_phase_offset(field_hz):
    assert np.ptp(field_hz[MASK]) * TE_S[-1] > 2  # the last echo wraps more than twice
    magnitude, phase = _acquire(field_hz, seed=1, offset_rad=_smooth_offset(2))
    estimate = estimate_total_field(magnitude, phase, TE_S, MASK, VOXEL_MM, "romeo")
    error = estimate.field_hz - field_hz
    assert abs(np.median(error[MASK])) < 0.5  # no 2*pi/dTE jump: the absolute field is right
    assert np.sqrt(np.mean(error[INTERIOR] ** 2)) < 0.5
    assert np.percentile(np.abs(error[MASK]), 99) < 3.0
    offset_error = np.angle(np.exp(1j * (estimate.phase_offset_rad - _smooth_offset(2))))
    assert np.sqrt(np.mean(offset_error[INTERIOR] ** 2)) < 0.05


@pytest.mark.slow
def test_laplacian_field_keeps_the_laplacian_of_the_known_field(field_hz):
    magnitude, phase = _acquire(field_hz, seed=3, offset_rad=_smooth_offset(4))
    estimate = estimate_total_field(magnitude, phase, TE_S, MASK, VOXEL_MM, "laplacian")
    truth_curvature = np.abs(_discrete_laplacian(field_hz)[INTERIOR]).mean()
    error_curvature = np.abs(_discrete_laplacian(estimate.field_hz - field_hz)[INTERIOR]).mean()
    assert error_curvature < 0.1 * truth_curvature


@pytest.mark.slow
def test_single_echo_field_is_phase_over_two_pi_te(field_hz):
    gentle = 0.3 * field_hz
    magnitude, phase = _acquire(gentle, seed=5)
    estimate = estimate_total_field(
        magnitude[..., 2:3], phase[..., 2:3], TE_S[2:3], MASK, VOXEL_MM, "romeo"
    )
    error = (estimate.field_hz - gentle)[INTERIOR]
    assert np.sqrt(np.mean((error - np.median(error)) ** 2)) < 1.0


@pytest.mark.slow
def test_reliability_is_low_where_the_phase_is_noise(field_hz):
    magnitude, phase = _acquire(field_hz, seed=6)
    x, _, _ = GRID
    corrupt = MASK & (x > 6)
    phase[corrupt] = np.random.default_rng(7).uniform(-np.pi, np.pi, phase[corrupt].shape)
    estimate = estimate_total_field(magnitude, phase, TE_S, MASK, VOXEL_MM, "romeo")
    clean = INTERIOR & (x < -2)
    assert estimate.reliability[clean].mean() > 0.5
    assert estimate.reliability[corrupt].mean() < 0.2 * estimate.reliability[clean].mean()
    assert np.all(estimate.reliability[~MASK] == 0)


def test_hz_to_ppm_uses_the_proton_gyromagnetic_ratio():
    one_ppm_at_3t_hz = GYROMAGNETIC_HZ_PER_T * 3.0 * 1e-6
    assert hz_to_ppm(np.array([one_ppm_at_3t_hz]), 3.0)[0] == pytest.approx(1.0)
    assert hz_to_ppm(np.array([-63.9]), 1.5)[0] == pytest.approx(-1.0006, abs=1e-3)


def test_bad_inputs_raise_one_clear_error():
    volume = np.zeros((4, 4, 4, 2))
    mask = np.ones((4, 4, 4), bool)
    with pytest.raises(ValueError, match="unknown unwrapping method"):
        estimate_total_field(volume, volume, (0.01, 0.02), mask, VOXEL_MM, "best")
    with pytest.raises(ValueError, match="echo times"):
        estimate_total_field(volume, volume, (0.01,), mask, VOXEL_MM, "romeo")
