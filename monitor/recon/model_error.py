"""What the reconstruction does to a known susceptibility map in one acquisition's geometry.

Background removal cannot tell the harmonic part of the brain's own field from the background
(LBV's boundary loss), and what it takes away depends on where the mask's boundary lies
against B0: the slab's end faces, the brain's surface, the head's roll
(docs/segmentation.md). On a patient that error cannot be seen. On a model of the same brain
it can: the model's field, through the same background removal, inversion and reference, minus
the model, is the reconstruction's error map for a brain like this one in this geometry.
The measurement step takes its mean over each structure off that structure's value.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from monitor.recon import fourier
from monitor.recon.background import remove_background
from monitor.recon.brain_box import brain_box
from monitor.recon.dipole import invert
from monitor.recon.mask import root_sum_of_squares
from monitor.recon.reference import apply_reference
from monitor.settings import ReconSettings
from monitor.types import Acquisition, QSMResult

__all__ = ["model_reconstruction_error"]


def model_reconstruction_error(
    model_chi_ppm: np.ndarray, result: QSMResult, acq: Acquisition, settings: ReconSettings
) -> np.ndarray:
    """The error map (ppm, zero outside `result.mask`) of reconstructing `model_chi_ppm` as
    `result` was reconstructed: sources inside `result.source_mask`, the same background
    removal, inversion and whole-brain reference. Both maps are referenced over the same
    mask, so the map's mean over the brain is zero and only the pattern remains."""
    if result.source_mask is None:
        raise ValueError("the reconstruction result does not say where its sources were")
    voxel, b0_dir = acq.voxel_mm, acq.b0_dir_voxel
    sources = np.asarray(result.source_mask, dtype=bool)
    box = brain_box(sources, voxel)
    model = np.where(sources, model_chi_ppm, 0.0).astype(np.float32)[box]
    background = remove_background(
        _dipole_field_ppm(model, voxel, b0_dir), sources[box], voxel, b0_dir, settings
    )
    chi = invert(
        background.local_field_ppm,
        background.mask,
        voxel,
        b0_dir,
        settings,
        magnitude=root_sum_of_squares(acq.magnitude)[box],
    )
    reconstructed, _ = apply_reference(np.asarray(chi), background.mask, "whole_brain")
    truth, _ = apply_reference(model, background.mask, "whole_brain")
    error = np.zeros(sources.shape, dtype=np.float32)
    error[box] = np.where(background.mask, reconstructed - truth, 0.0)
    return error


def _dipole_field_ppm(
    chi_ppm: np.ndarray, voxel_mm: tuple[float, float, float], b0_dir: tuple[float, float, float]
) -> np.ndarray:
    """The field of `chi_ppm` (ppm of B0) on a zero-padded grid, cropped back."""
    padded = fourier.padded_shape(chi_ppm.shape, voxel_mm)
    kernel = fourier.half_spectrum(fourier.dipole_kernel(padded, voxel_mm, b0_dir))
    field = fourier.convolve_half(fourier.pad(jnp.asarray(chi_ppm), padded), kernel)
    return np.asarray(fourier.crop(field, chi_ppm.shape), dtype=np.float32)
