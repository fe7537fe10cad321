"""The LBV solve: a discretely harmonic function is recovered from its boundary values."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from monitor.recon.harmonic import harmonic_fill


def _ball_problem(shape: tuple[int, int, int], voxel_mm: tuple[float, float, float]):
    """x^2 - y^2 + 3 z (mm): its 7-point Laplacian is zero exactly, on any spacing."""
    x, y, z = ((np.arange(n) - n / 2) * v for n, v in zip(shape, voxel_mm, strict=True))
    x, y, z = np.meshgrid(x, y, z, indexing="ij")
    values = (x**2 - y**2 + 3.0 * z).astype(np.float32) / 100.0
    radius = 0.4 * min(n * v for n, v in zip(shape, voxel_mm, strict=True))
    mask = x**2 + y**2 + z**2 < radius**2
    interior = ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(3, 1))
    return values, interior, mask & ~interior


@pytest.mark.parametrize(
    ("shape", "voxel_mm", "levels"),
    [
        ((61, 70, 33), (1.0, 1.0, 2.0), 3),  # odd sizes: padded to halve evenly
        ((61, 70, 33), (1.0, 1.0, 2.0), 0),  # plain CG
        ((40, 36, 44), (1.5, 1.5, 1.5), 3),
        ((14, 14, 10), (1.0, 1.0, 1.0), 3),  # too small to coarsen three times
    ],
)
def test_boundary_values_give_the_harmonic_function(shape, voxel_mm, levels) -> None:
    values, interior, boundary = _ball_problem(shape, voxel_mm)
    solved = np.asarray(
        harmonic_fill(
            jnp.asarray(np.where(boundary, values, 0.0)),
            jnp.asarray(interior),
            jnp.asarray(boundary),
            voxel_mm,
            1e-6,
            2000,
            levels,
        )
    )
    assert solved.shape == shape
    spread = np.ptp(values[interior])
    assert np.abs(solved - values)[interior].max() < 1e-3 * spread
    np.testing.assert_array_equal(solved[boundary], values[boundary])
    assert not solved[~(interior | boundary)].any()
