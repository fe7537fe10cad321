"""The fixed workload benchmarks divide their wall times by, timed in the same run, so figures
from a shared, loaded machine stay comparable."""

from __future__ import annotations

import time

import numpy as np

__all__ = ["fft_baseline_seconds"]


def fft_baseline_seconds() -> float:
    """Ten forward and inverse real FFTs of a 192 x 192 x 96 float32 volume."""
    volume = np.random.default_rng(0).standard_normal((192, 192, 96)).astype(np.float32)
    start = time.perf_counter()
    for _ in range(10):
        np.fft.irfftn(np.fft.rfftn(volume), s=volume.shape, axes=(0, 1, 2))
    return time.perf_counter() - start
