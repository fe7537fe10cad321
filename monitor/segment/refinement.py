"""Keep contrast-driven refinement inside the registered prior, and say how much it moved.

The deformable stage on the susceptibility map follows iron, which is what makes pallidum
and putamen borders right, but a vein, a haemorrhage or a noisy map can pull a label into
tissue the registered atlas never put it in. So a refined label survives only within
`reach_mm` of where the prior (the atlas through the linear transform) gives that structure
at least `support_probability`; QC records, per structure, what fraction of its prior labels
changed. The reach is needed because the linear prior is itself a few millimetres off on
warped heads: with no reach, the clamp cut correct pallidum voxels and moved its ROI mean by
4.7 ppb on the test phantom (Dice 0.79 instead of 0.90).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import ndimage

from monitor.grid_distance import within_mm

__all__ = ["clamp_to_support", "refinement_change"]


def clamp_to_support(  # noqa: PLR0913 - labels, prior and the rule's three numbers
    labels: np.ndarray,
    prior_probabilities: np.ndarray,
    label_ids: tuple[int, ...],
    support_probability: float,
    reach_mm: float = 0.0,
    voxel_mm: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> tuple[np.ndarray, dict[int, int]]:
    """`labels` with every voxel farther than `reach_mm` from its structure's prior support
    set to background, and the number of voxels removed per label id."""
    clamped = labels.copy()
    removed = {}
    for index, label in enumerate(label_ids):
        candidates = labels == label
        support = prior_probabilities[index] >= support_probability
        if reach_mm > 0 and candidates.any() and support.any():
            distance = ndimage.distance_transform_edt(~support, sampling=voxel_mm)
            support = within_mm(distance, reach_mm)
        outside = candidates & ~support
        removed[label] = int(outside.sum())
        clamped[outside] = 0
    return clamped, removed


def refinement_change(
    prior: np.ndarray, refined: np.ndarray, label_names: Mapping[int, str]
) -> dict[str, float]:
    """Per structure: voxels that changed (gained or lost) over the prior's voxel count."""
    change = {}
    for label, name in label_names.items():
        before, after = prior == label, refined == label
        change[name] = float((before ^ after).sum()) / max(int(before.sum()), 1)
    return change
