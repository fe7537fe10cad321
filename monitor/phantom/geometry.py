"""Acquisition geometry and subject variation for the phantom.

An oblique slab is a voxel grid rotated against the scanner axes; B0 stays along scanner z,
which is why reconstruction must use the B0 direction in voxel axes. A subject is the template
seen through a random affine plus a smooth displacement field, defined directly as the
backward map (scanner mm -> template mm) so that resampling never needs an inverse.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation


def oblique_affine(
    shape: Sequence[int],
    voxel_mm: Sequence[float],
    angles_deg: Sequence[float],
    centre_mm: Sequence[float],
) -> np.ndarray:
    """Voxel-to-RAS affine of a grid rotated by x, y, z angles whose centre sits at centre_mm."""
    rotation = Rotation.from_euler("xyz", angles_deg, degrees=True).as_matrix()
    affine = np.eye(4)
    affine[:3, :3] = rotation * np.asarray(voxel_mm, dtype=float)[None, :]
    centre_voxel = (np.asarray(shape, dtype=float) - 1.0) / 2.0
    affine[:3, 3] = np.asarray(centre_mm, dtype=float) - affine[:3, :3] @ centre_voxel
    return affine


def grid_points_mm(
    affine: np.ndarray, shape: Sequence[int], subvoxel: Sequence[float] = (0.0, 0.0, 0.0)
) -> np.ndarray:
    """(3, x, y, z) world coordinates of voxel centres, shifted by a fraction of a voxel."""
    index = np.indices(tuple(shape), dtype=np.float32)
    index += np.asarray(subvoxel, dtype=np.float32)[:, None, None, None]
    return (
        np.einsum("ij,j...->i...", affine[:3, :3].astype(np.float32), index)
        + affine[:3, 3].astype(np.float32)[:, None, None, None]
    )


@dataclass(frozen=True)
class SubjectWarp:
    """Backward map scanner mm -> template mm: affine part plus a smooth displacement field."""

    affine: np.ndarray
    displacement_mm: np.ndarray | None = None
    """(3, a, b, c) displacement on a coarse scanner-space lattice, or None for none."""
    lattice_origin_mm: np.ndarray | None = None
    lattice_spacing_mm: float = 8.0

    def __call__(self, points_mm: np.ndarray) -> np.ndarray:
        flat = points_mm.reshape(3, -1)
        mapped = self.affine[:3, :3] @ flat + self.affine[:3, 3:4]
        if self.displacement_mm is not None:
            lattice = (flat - self.lattice_origin_mm[:, None]) / self.lattice_spacing_mm
            for axis in range(3):
                mapped[axis] += ndimage.map_coordinates(
                    self.displacement_mm[axis], lattice, order=1, mode="nearest"
                )
        return mapped.reshape(points_mm.shape)


IDENTITY_WARP = SubjectWarp(affine=np.eye(4))


def random_warp(
    rng: np.random.Generator,
    strength_mm: float,
    centre_mm: Sequence[float],
    extent_mm: float = 300.0,
    spacing_mm: float = 8.0,
) -> SubjectWarp:
    """A plausible different head: +-4 deg rotations, +-5 % scaling, shifts and bending.

    `strength_mm` sets the shift and the typical local displacement; the displacement is
    Gaussian-smoothed over ~3 cm so anatomy bends without folding.
    """
    centre = np.asarray(centre_mm, dtype=float)
    rotation = Rotation.from_euler("xyz", rng.uniform(-4, 4, 3), degrees=True).as_matrix()
    linear = rotation @ np.diag(rng.uniform(0.95, 1.05, 3))
    affine = np.eye(4)
    affine[:3, :3] = linear
    affine[:3, 3] = centre - linear @ centre + rng.uniform(-1, 1, 3) * strength_mm
    n = int(np.ceil(extent_mm / spacing_mm)) + 1
    sigma = 30.0 / spacing_mm
    noise = rng.standard_normal((3, n, n, n))
    smooth = np.stack([ndimage.gaussian_filter(c, sigma, mode="wrap") for c in noise])
    smooth *= strength_mm / max(float(smooth.std()), 1e-12)
    return SubjectWarp(
        affine=affine,
        displacement_mm=smooth.astype(np.float32),
        lattice_origin_mm=centre - extent_mm / 2.0,
        lattice_spacing_mm=spacing_mm,
    )


def sample_on_grid(
    volumes: Sequence[np.ndarray],
    volume_affine: np.ndarray,
    grid_affine: np.ndarray,
    grid_shape: Sequence[int],
    warp: SubjectWarp,
    order: int,
    supersample: Sequence[int] = (1, 1, 1),
) -> list[np.ndarray]:
    """Resample template-grid volumes onto an acquisition grid through the subject warp.

    With `supersample` > 1 along an axis each voxel averages that many evenly spaced samples,
    i.e. a thick slice integrates the thin template slices it covers (partial volume). Values
    beyond the template's edge repeat the edge slice (the extruded neck at the bottom).
    """
    to_voxel = np.linalg.inv(volume_affine)
    offsets = [(np.arange(s) + 0.5) / s - 0.5 for s in supersample]
    shifts = np.array(np.meshgrid(*offsets, indexing="ij")).reshape(3, -1).T
    results = [np.zeros(tuple(grid_shape), dtype=np.float32) for _ in volumes]
    for shift in shifts:
        world = warp(grid_points_mm(grid_affine, grid_shape, shift))
        index = (
            np.einsum("ij,j...->i...", to_voxel[:3, :3], world) + to_voxel[:3, 3, None, None, None]
        )
        for volume, result in zip(volumes, results, strict=True):
            result += ndimage.map_coordinates(volume, index, order=order, mode="nearest")
    return [r / len(shifts) for r in results]
