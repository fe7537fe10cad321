"""Agreement between two segmentations: used to validate against phantoms or a reference tool."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from monitor.segment.structures import LABEL_IDS


def to_structure_ids(labels: np.ndarray, label_names: Mapping[int, str]) -> np.ndarray:
    """Renumber a named label map (e.g. a phantom's) to our ids; names we do not use become 0."""
    renumbered = np.zeros(labels.shape, dtype=np.int16)
    for label, name in label_names.items():
        if name in LABEL_IDS:
            renumbered[labels == label] = LABEL_IDS[name]
    return renumbered


def dice_per_structure(found: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Dice coefficient per named structure (both maps in our ids); 0 when both are empty."""
    scores = {}
    for name, label in LABEL_IDS.items():
        a, b = found == label, truth == label
        total = int(a.sum() + b.sum())
        scores[name] = 2.0 * float((a & b).sum()) / total if total else 0.0
    return scores
