"""Susceptibility referencing and magnitude-only ventricular CSF detection."""

import numpy as np
import pytest

from monitor.recon.reference import apply_reference, csf_mask_from_magnitude, r2star_per_s

VOXEL_MM = (1.5, 1.5, 1.5)
SHAPE = (96, 112, 80)
TE_S = (0.005, 0.012, 0.019, 0.026, 0.033)


def _ellipsoid_mm(semi_axes_mm, centre_mm=(0.0, 0.0, 0.0)) -> np.ndarray:
    axes = [(np.arange(n) - (n - 1) / 2) * v for n, v in zip(SHAPE, VOXEL_MM, strict=True)]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    (a, b, c), (cx, cy, cz) = semi_axes_mm, centre_mm
    return ((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 + ((z - cz) / c) ** 2 < 1


BRAIN = _ellipsoid_mm((64, 74, 54))
VENTRICLES = _ellipsoid_mm((5, 24, 8), (-9, 0, 8)) | _ellipsoid_mm((5, 24, 8), (9, 0, 8))
SULCAL_CSF = BRAIN & ~_ellipsoid_mm((61, 71, 51))  # a 3 mm CSF layer under the surface


def _magnitude(seed: int) -> np.ndarray:
    """CSF: bright and slowly decaying; tissue: darker, R2* 20/s; deep nuclei R2* 45/s."""
    csf = VENTRICLES | SULCAL_CSF
    proton_density = np.where(BRAIN, np.where(csf, 1.0, 0.8), 0.0)
    r2star = np.where(csf, 3.0, 20.0)
    r2star[_ellipsoid_mm((8, 7, 7), (20, 10, -6))] = 45.0
    signal = proton_density[..., None] * np.exp(-np.asarray(TE_S) * r2star[..., None])
    noise = 0.01 * np.random.default_rng(seed).standard_normal((2, *signal.shape))
    return np.abs(signal + noise[0] + 1j * noise[1])


def test_whole_brain_reference_zeroes_the_brain_mean_only_inside_the_mask():
    rng = np.random.default_rng(0)
    chi = rng.normal(0.05, 0.02, (8, 8, 8))
    mask = np.zeros(chi.shape, bool)
    mask[2:6, 2:6, 2:6] = True
    referenced, offset = apply_reference(chi, mask, "whole_brain")
    assert offset == pytest.approx(chi[mask].mean())
    assert referenced[mask].mean() == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_array_equal(referenced[~mask], chi[~mask].astype(np.float32))


def test_csf_reference_zeroes_the_csf_mean():
    chi = np.full((8, 8, 8), 0.02)
    chi[3:5, 3:5, 3:5] = -0.01
    mask = np.ones(chi.shape, bool)
    csf = np.zeros(chi.shape, bool)
    csf[3:5, 3:5, 3:5] = True
    referenced, offset = apply_reference(chi, mask, "csf", csf_mask=csf)
    assert offset == pytest.approx(-0.01)
    assert referenced[csf].mean() == pytest.approx(0.0, abs=1e-7)
    assert referenced[~csf].mean() == pytest.approx(0.03, abs=1e-6)


@pytest.mark.parametrize("csf", [None, np.zeros((4, 4, 4), bool)])
def test_csf_reference_without_csf_is_refused(csf):
    with pytest.raises(ValueError, match="CSF mask is missing or empty"):
        apply_reference(np.zeros((4, 4, 4)), np.ones((4, 4, 4), bool), "csf", csf_mask=csf)


def test_unknown_reference_is_refused():
    with pytest.raises(ValueError, match="unknown reference"):
        apply_reference(np.zeros((4, 4, 4)), np.ones((4, 4, 4), bool), "white_matter")


def test_r2star_fit_recovers_mono_exponential_decay():
    r2star = np.array([2.0, 20.0, 60.0])
    magnitude = 0.7 * np.exp(-np.asarray(TE_S) * r2star[:, None])
    np.testing.assert_allclose(r2star_per_s(magnitude, TE_S), r2star, rtol=1e-6)


def test_csf_mask_finds_the_ventricles_not_the_sulci():
    csf = csf_mask_from_magnitude(_magnitude(seed=1), TE_S, BRAIN, VOXEL_MM)
    overlap = np.count_nonzero(csf & VENTRICLES)
    assert overlap > 0.7 * np.count_nonzero(VENTRICLES)
    assert np.count_nonzero(csf & ~VENTRICLES) < 0.1 * overlap
    assert not np.any(csf & SULCAL_CSF)


def test_csf_mask_is_empty_for_a_single_echo():
    csf = csf_mask_from_magnitude(_magnitude(seed=2)[..., :1], TE_S[:1], BRAIN, VOXEL_MM)
    assert not csf.any()
