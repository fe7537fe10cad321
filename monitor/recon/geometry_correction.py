"""Deep grey matter values without the reconstruction's geometry-dependent error.

The map's error in a structure depends on the geometry: where the slab's end faces and the
brain's surface lie against B0 (docs/segmentation.md). Two parts were measured on simulated
heads (fields by the independent qsm_forward, 2026-12-07): LBV leaves part of the air and
bone field inside the brain (up to ~6 ppb in a nucleus, it is not harmonic on the discrete
grid near the sinuses), and every background removal loses part of the brain's own field.
PDF fits the background as dipoles outside the mask and leaves no measurable air or bone
residual (within 0.1 ppb), so all of its error comes from the brain itself, and a model of
the same brain in the same geometry reproduces it: the model's field through the same PDF,
inversion and reference, minus the model, is the error map.

So the values are measured on a second reconstruction of the same total field with PDF
(`MEASUREMENT_BACKGROUND`) minus that error map. The map the product sends out stays the
configured reconstruction (LBV by default: the better picture on its own).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from monitor.recon import fourier
from monitor.recon.background import remove_background
from monitor.recon.brain_box import brain_box, on_whole_grid
from monitor.recon.dipole import invert
from monitor.recon.mask import root_sum_of_squares
from monitor.recon.reference import apply_reference
from monitor.settings import ReconSettings
from monitor.types import Acquisition, QSMResult

__all__ = ["MEASUREMENT_BACKGROUND", "CorrectedMap", "geometry_corrected_map"]

MEASUREMENT_BACKGROUND = "pdf"
"""Background removal of the measurement reconstruction: the one whose error a brain model
reproduces (module docstring)."""


@dataclass(frozen=True)
class CorrectedMap:
    """The measurement map minus its modelled error (ppm, whole-brain referenced over `mask`,
    zero outside it) and what was taken off."""

    chi_ppm: np.ndarray
    mask: np.ndarray
    error_ppm: np.ndarray
    """The modelled reconstruction error (zero mean over `mask`)."""


def geometry_corrected_map(
    model_chi_ppm: np.ndarray, result: QSMResult, acq: Acquisition, settings: ReconSettings
) -> CorrectedMap:
    """`result`'s total field reconstructed again with `MEASUREMENT_BACKGROUND` (sources
    inside `result.source_mask`, the inversion and whole-brain reference of `settings`),
    minus the error that reconstruction makes of `model_chi_ppm`, a model of this brain on the
    acquisition grid (ppm)."""
    if result.source_mask is None:
        raise ValueError("the reconstruction result does not say where its sources were")
    measurement = settings.model_copy(update={"background": MEASUREMENT_BACKGROUND})
    voxel, b0_dir = acq.voxel_mm, acq.b0_dir_voxel
    sources = np.asarray(result.source_mask, dtype=bool)
    box = brain_box(sources, voxel)
    magnitude = root_sum_of_squares(acq.magnitude)[box]

    def reconstructed(field_ppm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        background = remove_background(field_ppm, sources[box], voxel, b0_dir, measurement)
        chi = invert(
            background.local_field_ppm,
            background.mask,
            voxel,
            b0_dir,
            measurement,
            magnitude=magnitude,
        )
        referenced, _ = apply_reference(np.asarray(chi), background.mask, "whole_brain")
        return referenced, background.mask

    measured, mask = reconstructed(np.asarray(result.total_field_ppm, dtype=np.float32)[box])
    model = np.where(sources, model_chi_ppm, 0.0).astype(np.float32)[box]
    modelled, _ = reconstructed(_dipole_field_ppm(model, voxel, b0_dir))
    truth, _ = apply_reference(model, mask, "whole_brain")
    error = np.where(mask, modelled - truth, 0.0)
    return CorrectedMap(
        chi_ppm=on_whole_grid(np.where(mask, measured - error, 0.0), box, sources.shape),
        mask=on_whole_grid(mask, box, sources.shape),
        error_ppm=on_whole_grid(error, box, sources.shape),
    )


def _dipole_field_ppm(
    chi_ppm: np.ndarray, voxel_mm: tuple[float, float, float], b0_dir: tuple[float, float, float]
) -> np.ndarray:
    """The field of `chi_ppm` (ppm of B0) on a zero-padded grid, cropped back."""
    padded = fourier.padded_shape(chi_ppm.shape, voxel_mm)
    kernel = fourier.half_spectrum(fourier.dipole_kernel(padded, voxel_mm, b0_dir))
    field = fourier.convolve_half(fourier.pad(jnp.asarray(chi_ppm), padded), kernel)
    return np.asarray(fourier.crop(field, chi_ppm.shape), dtype=np.float32)
