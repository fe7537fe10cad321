"""Moving arrays between numpy (x, y, z) with a RAS+ affine and SimpleITK images (LPS).

ITK works in LPS physical coordinates with (z, y, x) array order; NIfTI-style affines are RAS+
with (x, y, z) order. Every conversion goes through here so the two conventions meet once.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def to_sitk(array: np.ndarray, affine_ras: np.ndarray) -> sitk.Image:
    """A float32 SimpleITK image placed in physical space by a (rotation + scaling) affine."""
    affine = np.asarray(affine_ras, dtype=float)
    linear_lps = _RAS_TO_LPS @ affine[:3, :3]
    spacing = np.linalg.norm(linear_lps, axis=0)
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(array, np.float32).T))
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetDirection(tuple(float(d) for d in (linear_lps / spacing).ravel()))
    image.SetOrigin(tuple(float(o) for o in _RAS_TO_LPS @ affine[:3, 3]))
    return image


def voxel_sizes_mm(affine_ras: np.ndarray) -> tuple[float, float, float]:
    """Voxel edge lengths (mm) along the array axes: the affine's column norms."""
    sizes = np.linalg.norm(np.asarray(affine_ras, dtype=float)[:3, :3], axis=0)
    return (float(sizes[0]), float(sizes[1]), float(sizes[2]))


def from_sitk(image: sitk.Image) -> np.ndarray:
    """The voxel array of an image in (x, y, z) order."""
    return sitk.GetArrayFromImage(image).T


def resample_isotropic(image: sitk.Image, voxel_mm: float) -> sitk.Image:
    """Smooth then resample onto an isotropic grid with the same orientation and extent.

    Registration cost scales with voxel count, and a 2-3 mm grid keeps every structure we
    need while cutting a 1x1x2 mm slab by roughly an order of magnitude.
    """
    spacing = np.array(image.GetSpacing())
    size = np.array(image.GetSize())
    new_size = np.maximum(np.round(size * spacing / voxel_mm).astype(int), 1)
    variances = [(max(float(voxel_mm - s), 0.0) / 2.0) ** 2 for s in spacing]
    smoothed = sitk.DiscreteGaussian(image, variances)
    return sitk.Resample(
        smoothed,
        [int(n) for n in new_size],
        sitk.Transform(),
        sitk.sitkLinear,
        image.GetOrigin(),
        [voxel_mm] * 3,
        image.GetDirection(),
        0.0,
        sitk.sitkFloat32,
    )
