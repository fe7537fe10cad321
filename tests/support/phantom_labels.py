"""The head phantom's true deep grey matter labels as an aseg-style NIfTI: tests and
benchmarks about history and amendments measure on them instead of registering the atlas."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from monitor.phantom import Phantom
from monitor.segment.evaluation import to_structure_ids
from monitor.segment.structures import LABEL_IDS
from monitor.settings import SegmentationSettings


def write_true_labels(phantom: Phantom, path: Path) -> Path:
    """Write the phantom's labels with the aseg codes `[segmentation] external_labels` reads."""
    truth = to_structure_ids(phantom.labels, phantom.label_names)
    aseg = np.zeros(truth.shape, dtype=np.int16)
    for name, (value, *_) in SegmentationSettings().external_labels.items():
        if name in LABEL_IDS:
            aseg[truth == LABEL_IDS[name]] = value
    nib.save(nib.Nifti1Image(aseg, phantom.acquisition.affine_ras), path)
    return path
