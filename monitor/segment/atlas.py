"""Atlas probabilities pulled onto the acquisition grid and turned into one label map."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from monitor.segment.grid import from_sitk, to_sitk


def _crop_to_support(
    probabilities: np.ndarray, affine: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Keep only the box where any structure has probability, so resampling stays cheap."""
    support = np.argwhere(probabilities.max(axis=0) > 0)
    low = np.maximum(support.min(axis=0) - 1, 0)
    high = support.max(axis=0) + 2
    cropped = probabilities[:, low[0] : high[0], low[1] : high[1], low[2] : high[2]]
    shifted = affine.copy()
    shifted[:3, 3] = affine[:3, :3] @ low + affine[:3, 3]
    return cropped, shifted


def warp_probabilities(
    probabilities: np.ndarray,
    atlas_affine_ras: np.ndarray,
    transform: sitk.Transform,
    reference: sitk.Image,
) -> np.ndarray:
    """Resample (structure, x, y, z) probabilities through `transform` onto `reference`.

    All structures go through one vector-image resampling so the (expensive) deformable
    transform is evaluated once per output voxel, not once per structure.
    """
    cropped, affine = _crop_to_support(probabilities, atlas_affine_ras)
    vector = sitk.Compose([to_sitk(p, affine) for p in cropped])
    warped = sitk.Resample(vector, reference, transform, sitk.sitkLinear, 0.0)
    return np.stack(
        [from_sitk(sitk.VectorIndexSelectionCast(warped, i)) for i in range(len(cropped))]
    )


def max_probability_labels(
    probabilities: np.ndarray, label_ids: tuple[int, ...], threshold: float, mask: np.ndarray
) -> np.ndarray:
    """Each voxel takes its most probable structure if that probability reaches `threshold`.

    The threshold trades sensitivity for purity: below about 0.25 the atlas's smooth edges
    spill into neighbouring white matter and CSF; above 0.5 small structures (pallidum) shrink
    to their cores.
    """
    best = probabilities.argmax(axis=0)
    keep = (probabilities.max(axis=0) >= threshold) & mask.astype(bool)
    return np.where(keep, np.asarray(label_ids, dtype=np.int16)[best], 0).astype(np.int16)
