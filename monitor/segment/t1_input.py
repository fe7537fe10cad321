"""A same-session 3D T1 as the anatomy that is registered to the template.

T1 contrast is what the template has, so T1 -> template is the more reliable registration;
the GRE (where susceptibility is measured) is tied to it by a rigid registration within the
session. The T1 is brought onto the GRE's registration grid through that rigid transform and
masked by the GRE brain mask (the template is skull-free), so the template registration then
runs exactly as for the GRE magnitude, with a better-matched image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from monitor.segment.grid import resample_isotropic, to_sitk
from monitor.segment.registration import (
    RegistrationParameters,
    normalised_mutual_information,
    register_rigid,
)
from monitor.types import T1Image

__all__ = ["T1Image", "T1OnGrid", "as_t1_image", "t1_on_registration_grid"]


@dataclass(frozen=True)
class T1OnGrid:
    image: sitk.Image
    """T1 resampled onto the GRE registration grid, zero outside the GRE brain mask."""
    to_gre_nmi: float
    """Normalised mutual information of GRE and rigidly aligned T1 (QC of the session link)."""


def as_t1_image(t1: T1Image | tuple[np.ndarray, np.ndarray]) -> T1Image:
    """Accept a `T1Image` or an (array, affine) pair; refuse anything that is not 3-D."""
    image = t1 if isinstance(t1, T1Image) else T1Image(*t1)
    if np.ndim(image.intensity) != 3 or np.shape(image.affine_ras) != (4, 4):
        shape = np.shape(image.intensity)
        raise ValueError(f"T1 must be a 3-D array with a 4x4 affine, got {shape}")
    if not np.isfinite(image.intensity).all():
        raise ValueError("T1 contains NaN or infinite values")
    return image


def t1_on_registration_grid(
    t1: T1Image,
    gre: sitk.Image,
    gre_brain: sitk.Image,
    outline_mask: sitk.Image,
    params: RegistrationParameters,
) -> T1OnGrid:
    """Rigidly align the T1 to the GRE image `gre` (over `outline_mask`) and resample it there.

    The metric region includes a margin around the brain so that the brain's outline, which
    both contrasts show, anchors the alignment.
    """
    bright = float(np.percentile(t1.intensity, 99.5)) or 1.0
    # Smoothed onto the registration voxel size first: a 1 mm T1 would alias on a 2 mm grid.
    moving = resample_isotropic(
        to_sitk(np.clip(t1.intensity / bright, 0.0, 1.5), t1.affine_ras), gre.GetSpacing()[0]
    )
    rigid = register_rigid(gre, outline_mask, moving, params)
    aligned = sitk.Resample(moving, gre, rigid, sitk.sitkLinear, 0.0)
    masked = sitk.Mask(aligned, gre_brain)
    return T1OnGrid(masked, normalised_mutual_information(gre, moving, outline_mask, rigid))
