"""Keep contrast-driven refinement inside the registered prior, and say how much it moved.

The deformable stage on the susceptibility map follows iron, which is what makes pallidum
and putamen borders right, but a vein, a haemorrhage or a noisy map can pull a label into
tissue the registered atlas never put it in. So a refined label survives only where the prior
(the atlas through the transform before refinement) gives that structure at least
`support_probability`; QC records, per structure, what fraction of its prior labels changed.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["clamp_to_support", "refinement_change"]


def clamp_to_support(
    labels: np.ndarray,
    prior_probabilities: np.ndarray,
    label_ids: tuple[int, ...],
    support_probability: float,
) -> tuple[np.ndarray, dict[int, int]]:
    """`labels` with every voxel outside its structure's prior support set to background,
    and the number of voxels removed per label id."""
    clamped = labels.copy()
    removed = {}
    for index, label in enumerate(label_ids):
        outside = (labels == label) & (prior_probabilities[index] < support_probability)
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
