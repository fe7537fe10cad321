"""An externally computed segmentation (e.g. FastSurfer/FreeSurfer aseg) mapped to our labels.

The file must share the acquisition's frame of reference; if its grid differs (e.g. a
conformed 1 mm FreeSurfer volume) labels are carried over by nearest neighbour in world
coordinates. Label values are mapped to structure names by configuration
(`SegmentationSettings.external_labels`, FreeSurfer aseg numbers by default).
DICOM SEG input is not supported yet.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from monitor.anatomy_data import resample_volume
from monitor.segment.structures import LABEL_IDS
from monitor.settings import SegmentationSettings

SAME_GRID_TOLERANCE_MM = 1e-3


def map_external_labels(external: np.ndarray, label_map: dict[str, list[int]]) -> np.ndarray:
    """Translate external label values to our ids; unknown structure names are an error."""
    unknown = sorted(set(label_map) - set(LABEL_IDS))
    if unknown:
        raise ValueError(f"unknown structure names in external label map: {unknown}")
    labels = np.zeros(external.shape, dtype=np.int16)
    for name, values in label_map.items():
        labels[np.isin(external, values)] = LABEL_IDS[name]
    return labels


def read_external_labels(
    path: Path,
    affine_ras: np.ndarray,
    shape: tuple[int, ...],
    settings: SegmentationSettings,
) -> np.ndarray:
    """Our label map on the acquisition grid from a label NIfTI in the same frame of reference."""
    image = nib.load(path)
    values = np.asarray(image.dataobj)
    if values.ndim != 3:
        raise ValueError(f"external segmentation must be 3-D, got shape {values.shape}")
    if values.shape != tuple(shape) or not np.allclose(
        image.affine, affine_ras, atol=SAME_GRID_TOLERANCE_MM
    ):
        values = resample_volume(
            values.astype(np.float32), image.affine, np.asarray(affine_ras), tuple(shape), order=0
        )
    return map_external_labels(np.rint(values).astype(np.int32), settings.external_labels)
