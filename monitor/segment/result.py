"""What segmentation hands to measurement: labels on the acquisition grid plus its QC verdict."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from monitor.segment.chi_model import ChiModel

__all__ = ["Segmentation"]


@dataclass(frozen=True)
class Segmentation:
    """Deep grey matter labels on the acquisition grid.

    A result with ``reportable=False`` still carries whatever labels were produced (for the
    key image and for debugging) but its numbers must not be reported; ``reason`` says why in
    one line. Label ids follow `monitor.segment.structures.LABEL_NAMES`.

    QC is judged per structure and side: a structure that fails (implausible volume, poor
    slab coverage, left/right asymmetry) is listed in `withheld` with its reason and left
    out of `label_names`, so `monitor.measure.measure_structures(labels, label_names, ...)`
    reports the others and gives the withheld ones no values. `labels` keeps every label so
    the key image still shows what was withheld. ``reportable`` is False only when nothing
    can be reported (registration failed, or every structure was withheld).
    """

    labels: np.ndarray
    label_names: Mapping[int, str]
    method: str
    reportable: bool
    reason: str = ""
    qc: Mapping[str, Any] = field(default_factory=dict)
    """Similarity, coverage, volumes (ml), registration path, refinement change, seconds:
    the evidence behind `reportable` and `withheld`."""
    withheld: Mapping[str, str] = field(default_factory=dict)
    """Structure name (e.g. "putamen_left") -> why its numbers must not be reported."""
    chi_model: ChiModel | None = None
    """The registered template's susceptibility model on the acquisition grid, for the
    measurement step's geometry correction; None when not made (setting off, external
    labels, failed registration)."""
