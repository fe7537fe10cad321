"""An externally computed segmentation (e.g. FastSurfer/FreeSurfer aseg) mapped to our labels.

Two sources give the same thing, an `ExternalLabels`: a label NIfTI read here (values mapped by
`SegmentationSettings.external_labels`, FreeSurfer aseg numbers by default) or a DICOM SEG read
by the DICOM adapter (`dicom_node.assemble.seg_input`, segments matched by their codes). Either must
share the acquisition's frame of reference; if its grid differs (a conformed 1 mm FreeSurfer
volume, a SEG without its empty frames) labels are carried over by nearest neighbour in world
coordinates, so one resampling rule serves both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from monitor.anatomy_data import resample_volume
from monitor.errors import MonitorError
from monitor.nifti.reader import nifti_read_errors
from monitor.segment.structures import LABEL_IDS, REPORTED_NAMES
from monitor.settings import SegmentationSettings

SAME_GRID_TOLERANCE_MM = 1e-3
MAX_VALUES_SHOWN = 20


class ExternalLabelsError(MonitorError, ValueError):
    """A label file that does not follow the configured label scheme (one plain reason)."""


@dataclass(frozen=True)
class ExternalLabels:
    """Integer label values on their own grid, and which values make up each structure."""

    values: np.ndarray
    """3-D integer array (e.g. aseg numbers or DICOM segment numbers)."""
    affine_ras: np.ndarray
    """Voxel index of `values` -> RAS+ mm, in the acquisition's frame of reference."""
    label_map: Mapping[str, list[int]]
    """Structure name (``thalamus_left`` ...) -> the values that belong to it."""


def map_external_labels(external: np.ndarray, label_map: Mapping[str, list[int]]) -> np.ndarray:
    """Translate external label values to our ids; unknown structure names are an error."""
    unknown = sorted(set(label_map) - set(LABEL_IDS))
    if unknown:
        raise ValueError(f"unknown structure names in external label map: {unknown}")
    labels = np.zeros(external.shape, dtype=np.int16)
    for name, values in label_map.items():
        labels[np.isin(external, values)] = LABEL_IDS[name]
    return labels


def labels_on_grid(
    external: ExternalLabels, affine_ras: np.ndarray, shape: tuple[int, ...]
) -> np.ndarray:
    """Our label map on the acquisition grid (nearest neighbour when the grids differ)."""
    values = np.asarray(external.values)
    if values.ndim != 3:
        raise ValueError(f"external segmentation must be 3-D, got shape {values.shape}")
    if values.shape != tuple(shape) or not np.allclose(
        external.affine_ras, affine_ras, atol=SAME_GRID_TOLERANCE_MM
    ):
        # One empty voxel around the source keeps target voxel centres that land a rounding
        # error beyond the outermost source centre inside it (scipy's constant mode would
        # drop them), while anything farther out still reads as background.
        padded_affine = np.asarray(external.affine_ras) @ _shift(-1.0)
        values = resample_volume(
            np.pad(values.astype(np.float32), 1),
            padded_affine,
            np.asarray(affine_ras),
            tuple(shape),
            order=0,
        )
    return map_external_labels(np.rint(values).astype(np.int32), external.label_map)


def read_nifti_labels(path: Path, settings: SegmentationSettings) -> ExternalLabels:
    """A label NIfTI whose values are mapped by ``settings.external_labels``.

    Every reported structure and side must have at least one of its values in the file: a
    file in another numbering (a tool's own label list, a probability map) once gave 0.00 ml
    everywhere and replaced a good visit's history, so it is refused here, naming what was
    expected and what was found.
    """
    with nifti_read_errors(path):
        image = nib.load(path)
        values = np.asarray(image.dataobj)
    check_label_scheme(values, settings.external_labels, Path(path).name)
    return ExternalLabels(values, image.affine, settings.external_labels)


def check_label_scheme(values: np.ndarray, label_map: Mapping[str, list[int]], name: str) -> None:
    """Raise `ExternalLabelsError` when a reported structure side has none of its values."""
    found = np.unique(values)
    present = {int(v) for v in found if float(v).is_integer()}
    missing = [
        f"{structure} ({'/'.join(str(v) for v in label_map.get(structure, []))})"
        for structure in REPORTED_NAMES
        if not set(label_map.get(structure, [])) & present
    ]
    if missing:
        shown = ", ".join(f"{v:g}" for v in found[:MAX_VALUES_SHOWN])
        more = f" and {found.size - MAX_VALUES_SHOWN} more" if found.size > MAX_VALUES_SHOWN else ""
        raise ExternalLabelsError(
            f"{name} does not follow the expected label scheme ([segmentation] "
            f"external_labels, FreeSurfer aseg numbers by default): no voxels of "
            f"{', '.join(missing)}; values found: {shown}{more}"
        )


def _shift(voxels: float) -> np.ndarray:
    translation = np.eye(4)
    translation[:3, 3] = voxels
    return translation
