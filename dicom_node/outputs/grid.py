"""Our volumes on the source images' grid: axis order, geometry checks, plane attributes.

Our arrays are (x = DICOM column, y = DICOM row, z = slice in ascending order along the slice
normal), as `dicom_node.assemble.volume` builds them; so DICOM frame ``z`` is
``volume[:, :, z].T`` and its position is `SliceGeometry.position_lps(z)` of the acquisition's
own affine (`dicom_node.geometry`, shared with the assembler and the synthetic writers).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from highdicom import (
    CoordinateSystemNames,
    PixelMeasuresSequence,
    PlaneOrientationSequence,
    PlanePositionSequence,
)
from pydicom.dataset import Dataset

from dicom_node.geometry import SliceGeometry, geometry_from_affine
from dicom_node.outputs.common import check_sources
from monitor.record import ProcessingRecord

_POSITION_TOL_MM = 0.01


def dicom_frames(volume: np.ndarray) -> np.ndarray:
    """(x, y, z) -> (z, row, column): the order of DICOM frames and their pixels."""
    return np.ascontiguousarray(np.transpose(np.asarray(volume), (2, 1, 0)))


def checked_geometry(
    record: ProcessingRecord,
    sources: Sequence[Dataset],
    volume: np.ndarray,
    affine_ras: np.ndarray,
) -> SliceGeometry:
    """The volume's slice geometry, after checking it is the grid the sources were acquired on."""
    check_sources(record, sources)
    array = np.asarray(volume)
    if array.ndim != 3 or not np.all(np.isfinite(array)):
        raise ValueError("the volume for the source grid must be a finite 3-D array")
    first = sources[0]
    if (int(first.Columns), int(first.Rows)) != array.shape[:2]:
        raise ValueError("the volume's matrix differs from the source images")
    geometry = geometry_from_affine(affine_ras)
    if "ImagePositionPatient" in first:  # classic images: one per slice, in slice order
        if len(sources) != array.shape[2]:
            raise ValueError("the volume's slice count differs from the source images")
        for z, ds in enumerate(sources):
            position = [float(v) for v in ds.ImagePositionPatient]
            if np.linalg.norm(np.subtract(position, geometry.position_lps(z))) > _POSITION_TOL_MM:
                raise ValueError("the volume's geometry differs from the source images")
    return geometry


def plane_arguments(geometry: SliceGeometry, n_slices: int) -> dict[str, Any]:
    """highdicom's pixel measures, orientation and one position per frame, for slices 0..n-1."""
    return {
        "pixel_measures": PixelMeasuresSequence(
            pixel_spacing=geometry.pixel_spacing_mm,
            slice_thickness=geometry.slice_spacing_mm,
            spacing_between_slices=geometry.slice_spacing_mm,
        ),
        "plane_orientation": PlaneOrientationSequence(
            CoordinateSystemNames.PATIENT, geometry.image_orientation
        ),
        "plane_positions": [
            PlanePositionSequence(CoordinateSystemNames.PATIENT, geometry.position_lps(z))
            for z in range(n_slices)
        ],
    }
