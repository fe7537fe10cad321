"""Atlas probabilities pulled onto the acquisition grid and turned into one label map."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from monitor.grid_distance import steps_covering
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


def support_box_on_grid(  # noqa: PLR0913 - the atlas, the transform and the grid
    probabilities: np.ndarray,
    atlas_affine_ras: np.ndarray,
    linear: sitk.AffineTransform,
    grid_affine_ras: np.ndarray,
    grid_shape: tuple[int, ...],
    margin_mm: float,
) -> tuple[slice, slice, slice]:
    """Block of the acquisition grid that can receive atlas probability.

    The atlas support box is carried to the subject by the inverse of the linear stage and
    grown by `margin_mm` (more than any refinement moves a label), so warping probabilities
    onto this block instead of the whole slab gives the same labels several times faster.
    """
    cropped, affine = _crop_to_support(probabilities, atlas_affine_ras)
    size = np.array(cropped.shape[1:]) - 1
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)]) * size
    ras = corners @ affine[:3, :3].T + affine[:3, 3]
    inverse = linear.GetInverse()
    lps_to_ras = np.array([-1.0, -1.0, 1.0])
    subject = np.array([inverse.TransformPoint(tuple(p * lps_to_ras)) for p in ras]) * lps_to_ras
    to_index = np.linalg.inv(grid_affine_ras)
    index = subject @ to_index[:3, :3].T + to_index[:3, 3]
    voxel_mm = np.linalg.norm(np.asarray(grid_affine_ras)[:3, :3], axis=0)
    pad = np.array([steps_covering(margin_mm, float(v)) for v in voxel_mm])
    low = np.clip(np.floor(index.min(axis=0) - pad), 0, np.array(grid_shape)).astype(int)
    high = np.clip(np.ceil(index.max(axis=0) + pad) + 1, 0, np.array(grid_shape)).astype(int)
    return (slice(low[0], high[0]), slice(low[1], high[1]), slice(low[2], high[2]))
