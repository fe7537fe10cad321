"""The block of the grid that every stage after the brain mask works on.

A clinical GRE field of view (typically 220-256 mm) holds a brain of about 150 x 180 x 130 mm;
the voxels between them are air and scalp that unwrapping, background removal and the dipole
inversion would otherwise carry through every FFT and every iteration (on 256x256x128 at 1 mm
the box drops a third of the voxels and 30 % of the padded FFT grid). Cropping to the mask's own
bounding box would do least work, but its shape changes with every head, and every new shape
recompiles every stage (tens of seconds) and misses the cache that `qsm-monitor warmup` filled.
So the box has a fixed size per grid, `BOX_MM` along each axis (or the whole axis when that is
shorter): only its position follows the brain. Its shape depends on the grid and voxel size
alone, so warmup compiles exactly what a real run will use.

A mask that does not fit (a very large or very oblique head, or a mask that leaked into the
neck) keeps the whole axis where it does not fit: the result is the same, only slower, and
that one shape compiles once.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from monitor.grid_distance import steps_covering

__all__ = ["BOX_MM", "box_shape", "brain_box", "on_whole_grid"]

BOX_MM = 210.0
"""Box edge per axis. The largest adult brains measure about 180-190 mm front to back; with
head pose (up to ~20 degrees) an ellipsoid of that length spans a few mm more along a voxel
axis, and the margin left on each side adds to the 20 mm of zero padding before every FFT
(the inversion's ROI accuracy needs that distance: a 10 mm margin cost ~1 ppb)."""


def box_shape(
    shape: tuple[int, int, int], voxel_mm: tuple[float, float, float]
) -> tuple[int, int, int]:
    """Voxels per axis of the box on this grid: `BOX_MM` or the whole axis if shorter."""
    return tuple(  # type: ignore[return-value]
        min(int(n), steps_covering(BOX_MM, float(v))) for n, v in zip(shape, voxel_mm, strict=True)
    )


def brain_box(mask: np.ndarray, voxel_mm: tuple[float, float, float]) -> tuple[slice, ...]:
    """Slices of the box centred on the mask's bounding box, kept inside the grid.

    An axis along which the mask is longer than the box (or an empty mask) keeps its full
    length, so no mask voxel is ever cut off.
    """
    size = box_shape(mask.shape, voxel_mm)
    if not mask.any():
        return tuple(slice(0, n) for n in mask.shape)
    (occupied,) = ndimage.find_objects(np.asarray(mask, dtype=np.uint8))
    box = []
    for axis, n in enumerate(mask.shape):
        low, high = occupied[axis].start, occupied[axis].stop
        if high - low > size[axis]:
            box.append(slice(0, n))
            continue
        start = min(max((low + high) // 2 - size[axis] // 2, 0), n - size[axis])
        box.append(slice(start, start + size[axis]))
    return tuple(box)


def on_whole_grid(volume: np.ndarray, box: tuple[slice, ...], shape: tuple[int, ...]) -> np.ndarray:
    """`volume` (computed on `box`) placed on the whole grid, zero (False) elsewhere."""
    volume = np.asarray(volume)
    dtype = bool if volume.dtype == bool else np.float32
    whole = np.zeros(shape, dtype=dtype)
    whole[box] = volume
    return whole
