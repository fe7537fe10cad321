"""Input checks shared by the field-processing stages, done once outside the jitted kernels."""

from __future__ import annotations

import numpy as np


def validated_field_inputs(
    field: np.ndarray, mask: np.ndarray, voxel_mm: tuple[float, float, float]
) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """Return (float32 field, boolean mask, voxel size as floats) or raise a one-line error.

    Bad shapes inside `jax.jit` surface as opaque tracing errors, hence the early check.
    """
    field = np.asarray(field)
    mask = np.asarray(mask)
    if field.ndim != 3:
        raise ValueError(f"field must be 3-D, got shape {field.shape}")
    if mask.shape != field.shape:
        raise ValueError(f"mask shape {mask.shape} differs from field shape {field.shape}")
    voxel = tuple(float(v) for v in voxel_mm)
    if len(voxel) != 3 or min(voxel) <= 0:
        raise ValueError(f"voxel_mm must be three positive sizes, got {voxel_mm}")
    if not np.isfinite(field).all():
        raise ValueError("field contains NaN or infinite values")
    mask_bool = mask.astype(bool)
    if not mask_bool.any():
        raise ValueError("mask is empty")
    return field.astype(np.float32), mask_bool, voxel
