"""Small synthetic acquisitions shared by the dicom_node writer and assembly tests."""

from __future__ import annotations

import numpy as np

from monitor.types import Acquisition, b0_direction_in_voxel_axes

VOXEL_MM = (1.0, 1.2, 1.5)


def oblique_affine(voxel_mm: tuple[float, float, float] = VOXEL_MM) -> np.ndarray:
    """Slab rotated about two axes, with a translation, as an angulated brain scan would be."""
    a, b = np.deg2rad(17.0), np.deg2rad(-11.0)
    rot_x = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    rot_y = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    affine = np.eye(4)
    affine[:3, :3] = rot_x @ rot_y @ np.diag([-1.0, -1.0, 1.0]) @ np.diag(voxel_mm)
    affine[:3, 3] = [12.5, -30.0, 8.0]
    return affine


def axial_affine(voxel_mm: tuple[float, float, float] = VOXEL_MM) -> np.ndarray:
    """Plain axial slab as a scanner sends it: rows run anterior to posterior."""
    affine = np.diag([-voxel_mm[0], -voxel_mm[1], voxel_mm[2], 1.0])
    affine[:3, 3] = [90.0, 110.0, -40.0]
    return affine


def small_acquisition(
    affine: np.ndarray | None = None, shape: tuple[int, int, int, int] = (32, 24, 8, 3)
) -> Acquisition:
    """Random magnitude bounded away from zero (so real/imaginary phase is well defined)."""
    affine = oblique_affine() if affine is None else affine
    rng = np.random.default_rng(7)
    return Acquisition(
        magnitude=rng.uniform(200.0, 1000.0, shape),
        phase_rad=rng.uniform(-np.pi, np.pi, shape),
        te_s=tuple(0.004 + 0.008 * e for e in range(shape[3])),
        voxel_mm=tuple(float(v) for v in np.linalg.norm(affine[:3, :3], axis=0)),
        b0_tesla=3.0,
        b0_dir_voxel=b0_direction_in_voxel_axes(affine),
        affine_ras=affine,
        label="test",
    )
