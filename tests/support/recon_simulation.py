"""Small head-like susceptibility phantom for reconstruction tests.

Fields come from the independent `qsm_forward` model (its own kernel discretisation and padding),
so the tests do not check our operators against themselves. Air outside the head (+9.4 ppm
relative to tissue), a skull shell and a sinus give a strong background field; iron-rich deep
nuclei inside the brain mask are the local sources. qsm_forward swaps its kernel axes when
voxel_size[0] != voxel_size[1], so in-plane voxels stay square here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from qsm_forward import generate_field
from scipy import ndimage

SHAPE = (64, 64, 48)
VOXEL_MM = (2.0, 2.0, 2.5)
AIR_PPM = 9.4
OBLIQUE_B0 = tuple(np.array([0.25, -0.35, 0.90]) / np.linalg.norm([0.25, -0.35, 0.90]))
"""About 25 degrees from the slab normal, as for a strongly angulated axial slab."""


@dataclass(frozen=True)
class Phantom:
    chi_ppm: np.ndarray
    """Susceptibility inside the brain mask (zero outside): the inversion target."""
    brain_mask: np.ndarray
    magnitude: np.ndarray
    total_field_ppm: np.ndarray
    local_field_ppm: np.ndarray
    """Field of the inside-mask sources only: what background removal should return."""
    b0_dir: tuple[float, float, float]


def _ellipsoid(centre_mm, semi_axes_mm) -> np.ndarray:
    axes = [(np.arange(n) - (n - 1) / 2) * v for n, v in zip(SHAPE, VOXEL_MM, strict=True)]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    return (
        ((x - centre_mm[0]) / semi_axes_mm[0]) ** 2
        + ((y - centre_mm[1]) / semi_axes_mm[1]) ** 2
        + ((z - centre_mm[2]) / semi_axes_mm[2]) ** 2
    ) <= 1.0


# (centre mm, semi-axes mm, chi ppm, magnitude): deep grey nuclei are paramagnetic and dark.
_STRUCTURES = (
    ((0, 0, 5), (34, 42, 30), -0.03, 0.85),  # white matter
    ((0, 10, 8), (6, 14, 10), -0.02, 1.0),  # ventricle (CSF)
    ((-16, 6, 2), (6, 10, 8), 0.08, 0.65),  # putamen
    ((16, 6, 2), (6, 10, 8), 0.08, 0.65),
    ((-10, 2, 0), (4, 6, 6), 0.18, 0.45),  # globus pallidus
    ((10, 2, 0), (4, 6, 6), 0.18, 0.45),
    ((-5, -14, -14), (4, 4, 4), 0.12, 0.5),  # red nucleus
    ((5, -14, -14), (4, 4, 4), 0.12, 0.5),
    ((-9, -16, -20), (3, 6, 3), 0.15, 0.5),  # substantia nigra
    ((9, -16, -20), (3, 6, 3), 0.15, 0.5),
)


def make_phantom(
    b0_dir: tuple[float, float, float] = OBLIQUE_B0, noise_ppm: float = 1e-3, seed: int = 0
) -> Phantom:
    """Build the phantom and its fields; `noise_ppm` is Gaussian noise on the total field."""
    rng = np.random.default_rng(seed)
    head = _ellipsoid((0, 0, 0), (56, 62, 56))
    brain = _ellipsoid((0, 0, 2), (46, 52, 44))
    sinus = _ellipsoid((0, 30, -48), (12, 8, 5)) & ~brain
    skull = head & ~_ellipsoid((0, 0, 2), (50, 56, 48))

    chi = np.zeros(SHAPE)
    magnitude = np.where(brain, 0.9, 0.0)
    for centre, axes, chi_ppm, intensity in _STRUCTURES:
        region = _ellipsoid(centre, axes) & brain
        chi[region] = chi_ppm
        magnitude[region] = intensity
    background_chi = np.where(head, 0.0, AIR_PPM)
    background_chi[skull] = -2.0
    background_chi[sinus] = AIR_PPM
    magnitude[skull & ~sinus] = 0.1
    # Partial-volume blur of the outside sources: a 9.4 ppm voxel-sharp step rings at the
    # Nyquist frequency through the sampled k-space kernel, a non-harmonic artefact no real
    # (voxel-integrated) acquisition has. The brain itself stays source-free.
    background_chi = np.where(brain, 0.0, ndimage.gaussian_filter(background_chi, 1.0))
    magnitude += rng.normal(0.0, 0.02, SHAPE) * head

    direction = list(np.asarray(b0_dir) / np.linalg.norm(b0_dir))
    local = generate_field(chi, voxel_size=list(VOXEL_MM), B0_dir=direction)
    total = generate_field(chi + background_chi, voxel_size=list(VOXEL_MM), B0_dir=direction)
    total = total + rng.normal(0.0, noise_ppm, SHAPE)
    return Phantom(
        chi_ppm=chi,
        brain_mask=brain,
        magnitude=magnitude.astype(np.float32),
        total_field_ppm=np.where(head, total, 0.0).astype(np.float32),
        local_field_ppm=local.astype(np.float32),
        b0_dir=tuple(float(c) for c in direction),
    )


def relative_rmse(estimate: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """RMSE / RMS of the truth within `mask`, both demeaned (the mean field is unobservable)."""
    e = estimate[mask] - estimate[mask].mean()
    t = truth[mask] - truth[mask].mean()
    return float(np.sqrt(np.mean((e - t) ** 2) / np.mean(t**2)))
