"""Background field removal: keep only the field produced by sources inside the brain mask.

The total field is dominated (10-100x) by air/tissue interfaces outside the brain. Inside the
mask that background field is harmonic, which the two methods exploit differently:

* V-SHARP: a harmonic function equals its spherical mean, so (delta - SMV) removes it exactly
  wherever the sphere fits inside the mask. Several radii, large to small, keep the large-kernel
  estimate deep inside and the small-kernel one near the edge; the high-passed local field is
  then deconvolved with the largest kernel (truncated SVD). The mask shrinks by the smallest
  radius. The TSVD threshold decides which low frequencies are dropped: deep grey matter
  against the whole-brain mean is low-frequency contrast, so a high threshold biases it low,
  while a very low one amplifies what is left of the background (measured choice in
  docs/reconstruction.md).
* PDF: fits a susceptibility distribution outside the mask whose dipole field explains the
  field inside; what it cannot explain is local. No erosion, but slow to converge.
* LBV (Laplacian boundary value, Zhou, Liu, Spincemaille and Wang, NMR Biomed
  2014;27:312-319): the background is the harmonic function that equals the total field on
  the mask's boundary, found by solving Laplace's equation inside the mask (multigrid-
  preconditioned conjugate gradients on the 7-point Laplacian, `monitor.recon.harmonic`);
  the local field is the rest. It assumes the local field is zero on the boundary, which
  costs accuracy only in the outermost voxels (eroded by `lbv_erode_mm`), and it needs no
  deconvolution, so no low frequency is truncated. The
  default: with the inversion's data term inside the mask it gives the best whole-brain maps
  (docs/reconstruction.md).

Everything runs on a zero-padded grid with real FFTs and is `jax.jit`-compiled.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.sparse.linalg import cg
from scipy import ndimage

from monitor.recon.field_inputs import validated_field_inputs
from monitor.recon.fourier import (
    convolve_half,
    crop,
    dipole_kernel,
    half_spectrum,
    pad,
    padded_shape,
    smv_kernel,
)
from monitor.recon.harmonic import harmonic_fill
from monitor.recon.mask import erode_mm
from monitor.settings import ReconSettings

_ERODED_MIN_COVERAGE = 0.999
"""A voxel survives SMV erosion if at most 0.1% of its sphere leaves the mask: tolerant of
float32 FFT round-off, and the few outside voxels of a 12 mm sphere change nothing measurable."""
MULTIGRID_LEVELS = 3
"""Coarse grids in the V-cycle that preconditions LBV's solve (`monitor.recon.harmonic`):
3 levels took the 160x192x64 head's solve from 0.49 s (2 levels) to 0.30 s; each level is an
eighth of the one above, so more would add little."""


@dataclass(frozen=True)
class BackgroundResult:
    """Local field (ppm) and the mask where it is valid (eroded for the SHARP family)."""

    local_field_ppm: np.ndarray
    mask: np.ndarray
    method: str


def remove_background(
    total_field_ppm: np.ndarray,
    mask: np.ndarray,
    voxel_mm: tuple[float, float, float],
    b0_dir: tuple[float, float, float],
    settings: ReconSettings,
) -> BackgroundResult:
    """Remove the background field with the method chosen in `settings.background`.

    `b0_dir` (unit vector in voxel axes) is only used by PDF, whose dipole sources must point
    along the true field direction.
    """
    field, mask_bool, voxel = validated_field_inputs(total_field_ppm, mask, voxel_mm)
    padded = padded_shape(field.shape, voxel)
    field_j = jnp.asarray(field, dtype=jnp.float32)
    mask_j = jnp.asarray(mask_bool)
    if settings.background == "vsharp":
        radii = sorted({float(r) for r in settings.vsharp_radii_mm}, reverse=True)
        kernels = tuple(half_spectrum(smv_kernel(padded, voxel, r)) for r in radii)
        local, valid = _vsharp(field_j, mask_j, kernels, settings.vsharp_threshold, padded)
    elif settings.background == "lbv":
        local, valid = _lbv_local_field(field, mask_bool, voxel, settings)
    elif settings.background == "pdf":
        kernel = half_spectrum(dipole_kernel(padded, voxel, b0_dir))
        local, valid = _pdf(field_j, mask_j, kernel, settings.pdf_iterations, padded)
    else:
        raise ValueError(f"unknown background removal method: {settings.background!r}")
    valid_np = np.asarray(valid)
    if not valid_np.any():
        raise ValueError("background removal eroded the whole mask; use smaller SMV radii")
    return BackgroundResult(np.asarray(local), valid_np, settings.background)


def _lbv_local_field(
    field: np.ndarray,
    mask: np.ndarray,
    voxel_mm: tuple[float, float, float],
    settings: ReconSettings,
) -> tuple[np.ndarray, np.ndarray]:
    """LBV local field and its mask: the interior (mask minus its 6-connected boundary
    layer, where the boundary values are imposed) eroded by `lbv_erode_mm`."""
    interior = ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(3, 1))
    background = harmonic_fill(
        jnp.asarray(field, dtype=jnp.float32),
        jnp.asarray(interior),
        jnp.asarray(mask & ~interior),
        voxel_mm,
        settings.lbv_tolerance,
        settings.lbv_max_iterations,
        MULTIGRID_LEVELS,
    )
    valid = erode_mm(interior, settings.lbv_erode_mm, voxel_mm)
    return np.where(valid, field - np.asarray(background), 0.0).astype(np.float32), valid


def _eroded(mask_padded: jnp.ndarray, smv_half: jnp.ndarray) -> jnp.ndarray:
    """Voxels whose whole SMV sphere lies inside the mask (erosion by the sphere radius)."""
    coverage = convolve_half(mask_padded.astype(jnp.float32), smv_half)
    return mask_padded & (coverage > _ERODED_MIN_COVERAGE)


@partial(jax.jit, static_argnames=("padded",))
def _vsharp(
    field: jnp.ndarray,
    mask: jnp.ndarray,
    smv_halves: tuple[jnp.ndarray, ...],
    threshold: float,
    padded: tuple[int, int, int],
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """V-SHARP; `smv_halves` are ordered from the largest radius to the smallest."""
    m = pad(mask, padded)
    spectrum = jnp.fft.rfftn(pad(jnp.where(mask, field, 0.0), padded))
    combined = jnp.zeros(padded, dtype=jnp.float32)
    filled = jnp.zeros(padded, dtype=bool)
    for smv in smv_halves:
        eroded = _eroded(m, smv)
        high_pass = jnp.fft.irfftn(spectrum * (1.0 - smv), s=padded)
        combined = jnp.where(eroded & ~filled, high_pass, combined)
        filled = filled | eroded
    # Deep voxels (most of the brain) were filtered by the largest kernel, so its high-pass is
    # the one to undo; dividing by the smallest one over-amplifies their low frequencies.
    largest = 1.0 - smv_halves[0]
    inverse = jnp.where(jnp.abs(largest) > threshold, 1.0 / largest, 0.0)
    local = jnp.where(eroded, convolve_half(combined, inverse), 0.0)
    return crop(local, field.shape), crop(eroded, field.shape)


@partial(jax.jit, static_argnames=("iterations", "padded"))
def _pdf(
    field: jnp.ndarray,
    mask: jnp.ndarray,
    dipole_half: jnp.ndarray,
    iterations: int,
    padded: tuple[int, int, int],
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """PDF: least-squares fit of outside-mask dipole sources to the field inside the mask."""
    m = pad(mask, padded)
    f = pad(jnp.where(mask, field, 0.0), padded)

    def outside_field_inside(chi_outside: jnp.ndarray) -> jnp.ndarray:
        return jnp.where(m, convolve_half(jnp.where(m, 0.0, chi_outside), dipole_half), 0.0)

    def normal_operator(chi_outside: jnp.ndarray) -> jnp.ndarray:
        # D is real and symmetric, so the adjoint of (mask . D . outside) is (outside . D . mask).
        return jnp.where(m, 0.0, convolve_half(outside_field_inside(chi_outside), dipole_half))

    rhs = jnp.where(m, 0.0, convolve_half(f, dipole_half))
    chi_outside, _ = cg(normal_operator, rhs, tol=0.0, atol=0.0, maxiter=iterations)
    local = f - outside_field_inside(chi_outside)
    return crop(local, field.shape), mask
