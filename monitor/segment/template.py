"""The built-in template prepared for registration: skull-free T1, a susceptibility-like image,
brain mask and the deep grey matter probabilities in our label order.

Built once per process and registration voxel size (a few seconds) from `monitor.anatomy_data`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from monitor.anatomy_data import load_subcortical_atlas, load_template
from monitor.segment.grid import resample_isotropic, to_sitk, voxel_sizes_mm
from monitor.segment.local_contrast import REGISTRATION_CHI_SIGMA_MM, local_contrast
from monitor.segment.structures import CSF_LABELS, LABEL_IDS, STRUCTURES, structure_of

TYPICAL_CHI_PPM = {
    "thalamus": 0.02,
    "caudate": 0.06,
    "putamen": 0.08,
    "globus_pallidus": 0.18,
    "lateral_ventricle": 0.0,
    "grey_matter": 0.02,
    "white_matter": -0.03,
}
"""Rough adult susceptibilities (whole-brain reference) used only to *draw* a QSM-like
template. Mutual information needs the intensity ordering (pallidum > putamen > caudate >
thalamus ~ cortex > white matter, as in e.g. Li et al., NeuroImage 2014; Deistung et al.,
NeuroImage 2013), not these exact values, so the measured values are not pulled towards them."""

REGION_MARGIN_MM = 12.0
"""Margin around the deep grey matter for the local deformable refinement."""


@dataclass(frozen=True)
class RegistrationTemplate:
    t1: sitk.Image
    """Skull-free T1 on the registration grid."""
    pseudo_chi: sitk.Image
    brain: sitk.Image
    """Template brain mask (uint8) on the registration grid."""
    region: sitk.Image
    """Deep grey matter plus `REGION_MARGIN_MM` (uint8, 1 mm template grid)."""
    probabilities: np.ndarray
    """(label, x, y, z) probabilities in `LABEL_IDS` order, on the 1 mm template grid."""
    affine_ras: np.ndarray
    chi_parts: np.ndarray
    """(1 + structure, x, y, z) on the 1 mm grid: grey and white matter at their typical
    values outside the nuclei (ppm), then each of `STRUCTURES`' probability (both sides): the
    susceptibility model `monitor.segment.chi_model` pulls onto an acquisition."""


@lru_cache(maxsize=2)
def registration_template(voxel_mm: float) -> RegistrationTemplate:
    """Template images for a registration grid of `voxel_mm` (cached: built once)."""
    template = load_template()
    atlas = load_subcortical_atlas()
    order = [atlas.names.index(name) for name in LABEL_IDS]
    probabilities = np.ascontiguousarray(np.moveaxis(atlas.probability[..., order], 3, 0))
    brain = ndimage.binary_fill_holes((template.grey_matter + template.white_matter) >= 0.5)

    chi_parts = _chi_parts(probabilities, template.grey_matter, template.white_matter)
    pseudo_chi = chi_parts[0] + sum(
        TYPICAL_CHI_PPM[structure] * part
        for structure, part in zip(STRUCTURES, chi_parts[1:], strict=True)
    )
    pseudo_chi = local_contrast(
        pseudo_chi, brain, REGISTRATION_CHI_SIGMA_MM, voxel_sizes_mm(template.affine)
    )

    structures = [i for i, name in enumerate(LABEL_IDS) if name not in CSF_LABELS]
    deep_grey = probabilities[structures].max(axis=0) > 0.1
    voxel_size = float(np.abs(np.linalg.det(template.affine[:3, :3])) ** (1 / 3))
    region = ndimage.binary_dilation(
        deep_grey, iterations=int(round(REGION_MARGIN_MM / voxel_size))
    )

    def on_grid(volume: np.ndarray) -> sitk.Image:
        return resample_isotropic(to_sitk(volume * brain, template.affine), voxel_mm)

    return RegistrationTemplate(
        t1=on_grid(template.t1),
        pseudo_chi=on_grid(pseudo_chi),
        brain=sitk.Cast(on_grid(brain.astype(np.float32)) > 0.5, sitk.sitkUInt8),
        region=sitk.Cast(to_sitk(region.astype(np.float32), template.affine), sitk.sitkUInt8),
        probabilities=probabilities,
        affine_ras=template.affine,
        chi_parts=chi_parts,
    )


def _chi_parts(
    probabilities: np.ndarray, grey_matter: np.ndarray, white_matter: np.ndarray
) -> np.ndarray:
    """Tissue outside the nuclei at typical values (ppm), then each structure's probability
    (`RegistrationTemplate.chi_parts`); the ventricles are water, 0 ppm."""
    outside_nuclei = 1.0 - np.clip(probabilities.sum(axis=0), 0.0, 1.0)
    tissue = (
        TYPICAL_CHI_PPM["grey_matter"] * grey_matter
        + TYPICAL_CHI_PPM["white_matter"] * white_matter
    ) * outside_nuclei
    nuclei = [
        probabilities[[i for i, name in enumerate(LABEL_IDS) if structure_of(name) == s]].sum(0)
        for s in STRUCTURES
    ]
    return np.stack([tissue, *nuclei]).astype(np.float32)
