"""Susceptibility referencing: QSM gives chi only up to a constant, so a region is set to zero.

Whole-brain referencing needs nothing extra but shifts with atrophy and iron load; CSF
(lateral ventricles) is the usual clinical reference, close to water and stable over time.
`csf_mask_from_magnitude` finds ventricular CSF from the magnitude alone, so the CSF reference
works even without the segmentation stage.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from monitor.recon.mask import erode_mm

REFERENCES = ("whole_brain", "csf")
CSF_R2STAR_MAX_PER_S = 10.0
"""CSF has R2* of a few per second at 1.5-3 T; grey and white matter are above ~15."""
CSF_DEPTH_MM = 15.0
"""Ventricles lie deep; shallower bright, slowly decaying voxels are sulcal CSF or vessels,
which suffer partial volume with cortex."""
CSF_MIN_ML = 0.2
CSF_MAX_COMPONENTS = 2
"""Left and right lateral ventricles (often one connected piece)."""


def apply_reference(
    chi_ppm: np.ndarray, mask: np.ndarray, kind: str, csf_mask: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """Shift chi so the reference region has mean zero; returns (chi, offset subtracted in ppm).

    Only voxels inside `mask` are shifted: outside stays as given (normally 0).
    """
    mask = np.asarray(mask, dtype=bool)
    if kind == "whole_brain":
        region = mask
    elif kind == "csf":
        if csf_mask is None or not np.any(csf_mask):
            raise ValueError("CSF reference requested but the CSF mask is missing or empty")
        region = np.asarray(csf_mask, dtype=bool) & mask
        if not region.any():
            raise ValueError("CSF reference requested but the CSF mask lies outside the brain")
    else:
        raise ValueError(f"unknown reference {kind!r}; choose one of {REFERENCES}")
    if not region.any():
        raise ValueError("reference region is empty")
    offset = float(np.mean(np.asarray(chi_ppm, dtype=np.float64)[region]))
    referenced = np.where(mask, chi_ppm - offset, chi_ppm).astype(np.float32)
    return referenced, offset


def csf_mask_from_magnitude(
    magnitude: np.ndarray,
    te_s: tuple[float, ...],
    mask: np.ndarray,
    voxel_mm: tuple[float, float, float],
) -> np.ndarray:
    """Ventricular CSF: slow signal decay (low R2*), bright late echo, deep in the brain.

    Returns an empty mask when nothing qualifies (e.g. a single echo with no decay
    information); `apply_reference` then refuses the CSF reference with a clear message.
    """
    mask = np.asarray(mask, dtype=bool)
    if np.ndim(magnitude) != 4 or len(te_s) != np.shape(magnitude)[3]:
        raise ValueError("magnitude must be (x, y, z, echo) with one echo time per echo")
    if len(te_s) < 2 or not mask.any():
        return np.zeros(mask.shape, dtype=bool)
    late = np.asarray(magnitude[..., -1])
    deep = erode_mm(mask, CSF_DEPTH_MM, voxel_mm)
    candidates = deep & (late > np.median(late[mask]))
    slow_decay = r2star_per_s(np.asarray(magnitude[candidates]), te_s) < CSF_R2STAR_MAX_PER_S
    candidates[candidates] = slow_decay  # R2* only where it can matter: a fraction of voxels
    candidates = ndimage.binary_opening(candidates)  # drop isolated noisy voxels
    labels, count = ndimage.label(candidates)
    if count == 0:
        return candidates
    sizes = np.bincount(labels.ravel())[1:] * np.prod(voxel_mm) / 1000.0
    order = np.argsort(sizes)[::-1][:CSF_MAX_COMPONENTS]
    keep = [i + 1 for i in order if sizes[i] >= CSF_MIN_ML]
    return np.isin(labels, keep)


def r2star_per_s(magnitude: np.ndarray, te_s: tuple[float, ...]) -> np.ndarray:
    """Mono-exponential R2* from a log-linear fit weighted by signal^2 (Gaussian noise on S)."""
    te = np.asarray(te_s, dtype=np.float64)
    signal = np.maximum(magnitude, 1e-12)
    weight = signal**2
    log_signal = np.log(signal)
    total = weight.sum(axis=-1)
    te_mean = (weight * te).sum(axis=-1) / total
    log_mean = (weight * log_signal).sum(axis=-1) / total
    centred = te - te_mean[..., None]
    slope = (weight * centred * (log_signal - log_mean[..., None])).sum(axis=-1) / np.maximum(
        (weight * centred**2).sum(axis=-1), 1e-30
    )
    return -slope
