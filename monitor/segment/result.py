"""What segmentation hands to measurement: labels on the acquisition grid plus its QC verdict."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Segmentation:
    """Deep grey matter labels on the acquisition grid.

    A result with ``reportable=False`` still carries whatever labels were produced (for the
    key image and for debugging) but its numbers must not be reported; ``reason`` says why in
    one line. Label ids follow `monitor.segment.structures.LABEL_NAMES`.
    """

    labels: np.ndarray
    label_names: Mapping[int, str]
    method: str
    reportable: bool
    reason: str = ""
    qc: Mapping[str, Any] = field(default_factory=dict)
    """Similarity, coverage, volumes (ml), seconds: the evidence behind `reportable`."""
