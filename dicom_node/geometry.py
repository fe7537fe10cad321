"""DICOM slice geometry <-> NIfTI-style RAS+ affine, shared by the writer and the assembler.

Our array axes are x = DICOM column, y = DICOM row, z = slice (so a pydicom ``pixel_array`` of
shape (rows, cols) is transposed on read). DICOM positions are LPS+; RAS+ flips x and y.
Keeping both directions of the conversion in one module means the writer and the reader cannot
disagree about an axis or a sign.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
"""Its own inverse: flipping x and y twice is the identity."""


@dataclass(frozen=True)
class SliceGeometry:
    """The per-series attributes that, with one position per slice, fix the affine."""

    row_direction_lps: tuple[float, float, float]
    """First triplet of ImageOrientationPatient: direction of increasing column index."""
    column_direction_lps: tuple[float, float, float]
    """Second triplet: direction of increasing row index."""
    pixel_spacing_mm: tuple[float, float]
    """DICOM order: (spacing between rows, spacing between columns)."""
    slice_step_lps: tuple[float, float, float]
    """Vector from one slice's ImagePositionPatient to the next, in mm."""
    first_position_lps: tuple[float, float, float]

    @property
    def image_orientation(self) -> list[float]:
        return [*self.row_direction_lps, *self.column_direction_lps]

    @property
    def slice_spacing_mm(self) -> float:
        return float(np.linalg.norm(self.slice_step_lps))

    def position_lps(self, slice_index: int) -> list[float]:
        """ImagePositionPatient of one slice (centre of its first transmitted pixel)."""
        first = np.asarray(self.first_position_lps)
        return [float(v) for v in first + slice_index * np.asarray(self.slice_step_lps)]


def geometry_from_affine(affine_ras: np.ndarray, orthogonal_tol: float = 1e-4) -> SliceGeometry:
    """Split a voxel->RAS+ affine into DICOM attributes; refuses shears DICOM cannot express."""
    lps = LPS_FROM_RAS @ np.asarray(affine_ras, dtype=float)
    columns = lps[:3, :3]
    spacing = np.linalg.norm(columns, axis=0)
    if np.any(spacing <= 0):
        raise ValueError("affine has a zero-length voxel axis")
    unit = columns / spacing
    gram = unit.T @ unit
    if np.max(np.abs(gram - np.eye(3))) > orthogonal_tol:
        raise ValueError("affine axes are not orthogonal; DICOM slices cannot express a shear")
    return SliceGeometry(
        row_direction_lps=_triplet(unit[:, 0]),
        column_direction_lps=_triplet(unit[:, 1]),
        pixel_spacing_mm=(float(spacing[1]), float(spacing[0])),
        slice_step_lps=_triplet(columns[:, 2]),
        first_position_lps=_triplet(lps[:3, 3]),
    )


def affine_from_geometry(
    image_orientation: np.ndarray,
    pixel_spacing_mm: np.ndarray,
    first_position_lps: np.ndarray,
    slice_step_lps: np.ndarray,
) -> np.ndarray:
    """Voxel (x=column, y=row, z=slice) -> RAS+ mm affine from DICOM attributes."""
    orientation = np.asarray(image_orientation, dtype=float)
    row_spacing, column_spacing = (float(v) for v in pixel_spacing_mm)
    lps = np.eye(4)
    lps[:3, 0] = orientation[:3] * column_spacing
    lps[:3, 1] = orientation[3:] * row_spacing
    lps[:3, 2] = np.asarray(slice_step_lps, dtype=float)
    lps[:3, 3] = np.asarray(first_position_lps, dtype=float)
    return LPS_FROM_RAS @ lps


def slice_normal(image_orientation: np.ndarray) -> np.ndarray:
    """Unit normal (row x column) along which slices are sorted."""
    orientation = np.asarray(image_orientation, dtype=float)
    normal = np.cross(orientation[:3], orientation[3:])
    return normal / np.linalg.norm(normal)


def _triplet(vector: np.ndarray) -> tuple[float, float, float]:
    return (float(vector[0]), float(vector[1]), float(vector[2]))
