"""A susceptibility model of the subject's brain: the registered template's tissue classes and
deep grey matter nuclei, on the acquisition grid.

Why: the reconstruction's error in a structure depends on the head's geometry (how the slab
cuts the brain, how B0 crosses it; docs/segmentation.md). Running the same reconstruction on
a model of this brain in this geometry measures that error where it cannot be measured on the
patient (`monitor.recon.geometry_correction`); the measurement step measures without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from monitor.segment.atlas import warp_probabilities
from monitor.segment.grid import to_sitk
from monitor.segment.structures import STRUCTURES
from monitor.segment.template import RegistrationTemplate

__all__ = ["ChiModel", "chi_model_on_grid"]


@dataclass(frozen=True)
class ChiModel:
    """The model on the acquisition grid, in parts, so the nuclei can take any values."""

    tissue_ppm: np.ndarray
    """Grey and white matter at their typical values where no nucleus is (ppm)."""
    nuclei: Mapping[str, np.ndarray]
    """Structure ("putamen") -> probability of either side's nucleus, 0-1."""

    def chi_ppm(self, nuclei_ppm: Mapping[str, float]) -> np.ndarray:
        """The model with each nucleus at `nuclei_ppm[structure]` (ppm)."""
        chi = self.tissue_ppm.copy()
        for structure, probability in self.nuclei.items():
            chi += np.float32(nuclei_ppm[structure]) * probability
        return chi


def chi_model_on_grid(
    template: RegistrationTemplate,
    transform: sitk.Transform,
    affine_ras: np.ndarray,
    shape: tuple[int, int, int],
) -> ChiModel:
    """The template's tissue and nuclei (`RegistrationTemplate.chi_parts`) pulled onto the
    grid through the subject-to-template `transform` (one vector resampling: the deformable
    transform is evaluated once)."""
    reference = to_sitk(np.zeros(shape, dtype=np.float32), affine_ras)
    warped = warp_probabilities(template.chi_parts, template.affine_ras, transform, reference)
    return ChiModel(
        tissue_ppm=warped[0].astype(np.float32),
        nuclei={s: warped[1 + k].astype(np.float32) for k, s in enumerate(STRUCTURES)},
    )
