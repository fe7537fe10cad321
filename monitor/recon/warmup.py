"""Compile the reconstruction for one grid ahead of time, into the persistent cache.

Every stage is compiled for the array shapes it meets (grid and echo count) and the voxel size
(a compile-time constant of the Fourier kernels' users); nothing else about the data reaches
the compiled programs. So reconstructing a synthetic head-shaped acquisition on the same grid
fills the cache with exactly the executables a real run of that grid needs.
"""

from __future__ import annotations

import time

import numpy as np

from monitor.recon.brain_box import box_shape
from monitor.recon.pipeline import reconstruct
from monitor.settings import ReconSettings
from monitor.types import Acquisition

__all__ = ["synthetic_acquisition", "warm_up"]

FIRST_TE_S = 0.004
ECHO_SPACING_S = 0.006
B0_TESLA = 3.0
HEAD_FIELD_HZ = 20.0
"""Peak of the smooth synthetic field: a few wraps by the last echo, as in a real head."""


def synthetic_acquisition(
    shape: tuple[int, int, int], n_echoes: int, voxel_mm: tuple[float, float, float]
) -> Acquisition:
    """An ellipsoidal 'head' filling most of the brain box, with smooth wrapped field and noise.

    Only its shapes matter for compilation, but it must take every branch a head takes: a mask
    that survives erosion and V-SHARP, wraps for the unwrapper and a non-trivial magnitude,
    and that fits the fixed-size box the stages after the mask work on
    (`monitor.recon.brain_box`), so the box's shape is the one compiled.
    """
    rng = np.random.default_rng(0)
    axes = [np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in shape]
    x, y, z = np.meshgrid(*axes, indexing="ij", sparse=True)
    fill = [b / n for b, n in zip(box_shape(shape, voxel_mm), shape, strict=True)]
    radius2 = (x / (0.8 * fill[0])) ** 2 + (y / (0.8 * fill[1])) ** 2 + (z / (0.85 * fill[2])) ** 2
    inside = radius2 < 1.0
    field_hz = HEAD_FIELD_HZ * (x * y + 0.5 * z**2 - 0.3 * x)
    te = FIRST_TE_S + ECHO_SPACING_S * np.arange(n_echoes)
    decay = np.exp(-te * 20.0)
    magnitude = np.where(inside, 1.0 - 0.3 * radius2, 0.0)[..., None] * decay
    magnitude = np.abs(magnitude + 0.01 * rng.standard_normal((*shape, n_echoes)))
    phase = 2.0 * np.pi * field_hz[..., None] * te + 0.5 * x[..., None]
    phase = phase + 0.02 * rng.standard_normal((*shape, n_echoes))
    return Acquisition(
        magnitude=magnitude.astype(np.float32),
        phase_rad=np.angle(np.exp(1j * phase)).astype(np.float32),
        te_s=tuple(float(t) for t in te),
        voxel_mm=tuple(float(v) for v in voxel_mm),  # type: ignore[arg-type]
        b0_tesla=B0_TESLA,
        b0_dir_voxel=(0.0, 0.0, 1.0),
        affine_ras=np.diag([*voxel_mm, 1.0]),
        label="warmup",
    )


def warm_up(
    shape: tuple[int, int, int],
    n_echoes: int,
    voxel_mm: tuple[float, float, float],
    settings: ReconSettings,
) -> float:
    """Reconstruct a synthetic acquisition of this grid once; returns the seconds it took.

    The persistent compilation cache must be enabled by the caller (it chooses the folder).
    A CSF reference is swapped for the whole-brain one: the synthetic head has no ventricles,
    and referencing is plain NumPy that compiles nothing.
    """
    started = time.perf_counter()
    reconstruct(
        synthetic_acquisition(shape, n_echoes, voxel_mm),
        settings.model_copy(update={"reference": "whole_brain"}),
    )
    return time.perf_counter() - started
