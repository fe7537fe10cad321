"""Spatial and temporal phase unwrapping in JAX.

Two spatial methods:

* `laplacian_unwrap`: solves a Poisson equation whose source is the Laplacian of the wrapped
  phase, built from wrapped neighbour differences inside the mask. One FFT pair, fast and
  never fails, but it only keeps the Laplacian of the phase: harmonic parts (and the constant)
  are not preserved.
* `romeo_unwrap`: quality-guided region growing in the spirit of ROMEO (Dymerska et al., MRM
  2021). A sequential priority queue over millions of voxels is far too slow in Python, so the
  growth runs in parallel: quality levels go from high to low and at each level every axis is
  swept forward and backward (a `lax.scan` over slices, vectorised within each slice), carrying
  known values along whole lines across all edges whose quality is at least the level, until
  nothing grows. Each result is congruent with the data (wrapped value + 2*pi*k), so the field
  is recovered exactly wherever the path is right.

`temporal_unwrap` then fixes each echo's 2*pi multiple against a prediction from other echoes.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from scipy import ndimage

from monitor.recon import fourier
from monitor.recon.neighbours import neighbour, zero_padded

TWO_PI = 2.0 * np.pi
PASSABLE_FRACTIONS = (0.9, 0.97)
"""Share of in-mask edges passable at each quality level before the final level (all edges).

The ordering only matters for the poorest edges (noise, vessels, steep boundaries), so the
first level already passes 90%. Stricter early levels block random edges everywhere: lines
then break every few voxels and the growth winds through clusters, needing many sweeps for
nothing (head phantom, 4M-voxel box: 21 s CPU with levels from the median, 4 s with these,
same result)."""


STALL_FRACTION = 1e-3
"""Growth per round (share of the mask) below which a quality level is considered done."""


def wrap(phase_rad: jnp.ndarray) -> jnp.ndarray:
    """Map to [-pi, pi)."""
    return (phase_rad + jnp.pi) % TWO_PI - jnp.pi


def _forward_difference(volume: jnp.ndarray, axis: int) -> jnp.ndarray:
    """volume[i+1] - volume[i] along `axis`, with 0 for the last voxel (no neighbour)."""
    diff = jnp.diff(volume, axis=axis)
    widths = [(0, 0)] * volume.ndim
    widths[axis] = (0, 1)
    return jnp.pad(diff, widths)


@partial(jax.jit, static_argnames=("voxel_mm",))
def laplacian_unwrap(
    phase_rad: jnp.ndarray, mask: jnp.ndarray, voxel_mm: tuple[float, float, float]
) -> jnp.ndarray:
    """Laplacian (least-squares) unwrapping of one 3-D wrapped phase volume inside `mask`.

    The source is the divergence of the wrapped phase gradient over edges inside the mask,
    which equals the Laplacian of the true phase wherever neighbour differences stay below pi.
    Outside the mask (noise) the gradient is taken as zero, so the result does not depend on
    noise there. It is inverted with the same discrete Laplacian on a zero-padded grid: inside
    the mask the result differs from the truth by a harmonic function (exactly recovered only
    for a phase that is flat at the mask boundary); background removal discards such parts.
    """
    shape = phase_rad.shape
    grid = fourier.padded_shape(shape, voxel_mm)
    padded = fourier.pad(phase_rad.astype(jnp.float32), grid)
    inside = fourier.pad(mask.astype(bool), grid)
    source = jnp.zeros_like(padded)
    for axis, spacing in enumerate(voxel_mm):
        both_inside = inside & jnp.roll(inside, -1, axis=axis)
        gradient = jnp.where(both_inside, wrap(jnp.roll(padded, -1, axis=axis) - padded), 0.0)
        source = source + (gradient - jnp.roll(gradient, 1, axis=axis)) / spacing**2
    kernel = fourier.half_spectrum(fourier.laplacian_kernel(grid, voxel_mm))
    inverse = jnp.where(kernel == 0, 0.0, 1.0 / jnp.where(kernel == 0, 1.0, kernel))
    return fourier.crop(fourier.convolve_half(source, inverse), shape)


@jax.jit
def edge_quality(
    template_rad: jnp.ndarray,
    magnitude: jnp.ndarray,
    mask: jnp.ndarray,
    consistency_rad: jnp.ndarray,
    consistency_scale: float,
    magnitude_reference: float,
) -> jnp.ndarray:
    """Quality in [0, 1] of the edge from each voxel to its +1 neighbour on each axis, (3,x,y,z).

    Product of ROMEO-style terms, each near 1 for an edge that is safe to cross:
    phase coherence (small wrapped difference), across-echo coherence (the difference seen in
    `consistency_rad`, divided by `consistency_scale`, agrees with the template), magnitude
    coherence (similar magnitudes: no tissue/vessel boundary) and magnitude weight (strong
    signal relative to `magnitude_reference`, so low phase noise). Edges leaving the mask or
    the volume have quality 0.
    """
    magnitude = magnitude.astype(jnp.float32)
    reference = magnitude_reference + 1e-12
    inside_edges = _in_mask_edges(mask)
    padded_magnitude = zero_padded(magnitude)
    qualities = []
    for axis in range(3):
        delta = wrap(_forward_difference(template_rad, axis))
        delta_other = wrap(_forward_difference(consistency_rad, axis))
        phase_coherence = 1.0 - jnp.abs(delta) / jnp.pi
        echo_coherence = 1.0 - jnp.abs(wrap(delta * consistency_scale - delta_other)) / jnp.pi
        following = neighbour(padded_magnitude, axis, 1)
        low, high = jnp.minimum(magnitude, following), jnp.maximum(magnitude, following)
        magnitude_coherence = (low / (high + 1e-12)) ** 2
        magnitude_weight = 0.5 + 0.5 * jnp.minimum(1.0, 0.5 * (low + high) / reference)
        quality = phase_coherence * echo_coherence * magnitude_coherence * magnitude_weight
        qualities.append(jnp.where(inside_edges[axis], jnp.clip(quality, 0.0, 1.0), 0.0))
    return jnp.stack(qualities)


@jax.jit
def voxel_quality(quality: jnp.ndarray) -> jnp.ndarray:
    """Mean quality of the (up to six) edges touching each voxel, in [0, 1]."""
    total = quality.sum(axis=0)
    for axis in range(3):
        total = total + neighbour(zero_padded(quality[axis]), axis, -1)
    return total / 6.0


def _sweep_leading(
    unwrapped: jnp.ndarray,
    visited: jnp.ndarray,
    phase: jnp.ndarray,
    passable: jnp.ndarray,
    reverse: bool,
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """One sequential pass over the leading axis, carrying visited values across passable edges.

    `passable[i]` is the edge (i, i+1). A sequential scan over slices (vectorised within each
    slice) carries a value along a whole line in one pass, which is what makes parallel region
    growing affordable. A new value is the wrapped datum plus the 2*pi multiple closest to its
    neighbour, i.e. neighbour + wrapped difference, and is exactly congruent with the data.
    """
    incoming = passable
    if reverse:
        incoming = jnp.concatenate([jnp.zeros_like(passable[:1]), passable[:-1]])

    def step(carry, current):
        value_prev, visited_prev, passable_prev = carry
        value, seen, datum, passable_here = current
        reach = visited_prev & passable_prev & ~seen
        value = jnp.where(reach, datum + TWO_PI * jnp.round((value_prev - datum) / TWO_PI), value)
        seen = seen | reach
        return (value, seen, passable_here), (value, seen)

    start = (jnp.zeros_like(unwrapped[0]), jnp.zeros_like(visited[0]), jnp.zeros_like(passable[0]))
    _, (unwrapped, visited) = jax.lax.scan(
        step, start, (unwrapped, visited, phase, incoming), reverse=reverse
    )
    return unwrapped, visited


@partial(jax.jit, static_argnames=("axis",))
def _sweep_axis(
    unwrapped: jnp.ndarray,
    visited: jnp.ndarray,
    phase: jnp.ndarray,
    passable: jnp.ndarray,
    axis: int,
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Forward and backward pass along `axis` (moved to the front for the scan); `passable`
    holds that axis's edges."""
    moved_phase = jnp.moveaxis(phase, axis, 0)
    moved_passable = jnp.moveaxis(passable, axis, 0)
    value, seen = jnp.moveaxis(unwrapped, axis, 0), jnp.moveaxis(visited, axis, 0)
    for reverse in (False, True):
        value, seen = _sweep_leading(value, seen, moved_phase, moved_passable, reverse)
    return jnp.moveaxis(value, 0, axis), jnp.moveaxis(seen, 0, axis)


def _in_mask_edges(mask: jnp.ndarray) -> jnp.ndarray:
    """(3, x, y, z): the edge from a voxel to its +1 neighbour has both ends in the mask."""
    padded = zero_padded(mask)
    return jnp.stack([mask & neighbour(padded, axis, 1) for axis in range(3)])


@jax.jit
def _passable_edges(
    mask: jnp.ndarray, quality: jnp.ndarray, level: jnp.ndarray
) -> tuple[jnp.ndarray, ...]:
    """Per axis, the in-mask edges whose quality is at least `level`."""
    return tuple(_in_mask_edges(mask) & (quality >= level))


@jax.jit
def _count(visited: jnp.ndarray) -> jnp.ndarray:
    """Set voxels, counted on the device: the only value the growth loop reads back."""
    return jnp.sum(visited, dtype=jnp.int32)


def _grow(
    phase: jnp.ndarray,
    quality: jnp.ndarray,
    mask: jnp.ndarray,
    seeds: jnp.ndarray,
    levels: np.ndarray,
) -> jnp.ndarray:
    """Region growing from `seeds` through edges of decreasing quality until no voxel is left.

    The last level must be negative so that every in-mask edge is finally passable. A level
    before the last is left once a round adds fewer than `STALL_FRACTION` of the mask: its
    last rounds add a few hundred voxels each along winding paths, and the next level reaches
    those through slightly poorer edges in one round instead of several. Growth stops as soon
    as every mask voxel is reached, without the round that would only confirm it (a
    160x192x64 head needs 7-8 rounds).

    The rounds are driven from Python, each axis's passes a compiled call of its own: compiled
    as one program (a `while_loop` over rounds of all six scans) a round took 82-87 ms on a
    160x192x64 head against 42 ms as three calls, with the same result to the bit; the host
    reads one count per round.
    """
    mask_voxels = int(_count(mask))
    stall = int(np.floor(STALL_FRACTION * mask_voxels))
    unwrapped, visited = jnp.where(seeds, phase, 0.0), jnp.asarray(seeds)
    reached = int(_count(visited))
    for index, level in enumerate(levels):
        if reached == mask_voxels:
            break
        passable = _passable_edges(mask, quality, jnp.float32(level))
        enough = 0 if index == len(levels) - 1 else stall
        while True:
            for axis in range(3):
                unwrapped, visited = _sweep_axis(unwrapped, visited, phase, passable[axis], axis)
            before, reached = reached, int(_count(visited))
            if reached == mask_voxels or reached - before <= enough:
                break
    return unwrapped


def quality_levels(quality: np.ndarray) -> np.ndarray:
    """Descending quality thresholds (see `PASSABLE_FRACTIONS`), ending with -1 (every edge)."""
    positive = quality[quality > 0]
    if positive.size == 0:
        return np.array([-1.0], dtype=np.float32)
    sample = positive[:: max(1, positive.size // 200_000)]
    thresholds = np.quantile(sample, 1.0 - np.asarray(PASSABLE_FRACTIONS))
    return np.append(thresholds, -1.0).astype(np.float32)


def romeo_unwrap(
    phase_rad: np.ndarray,
    quality: np.ndarray,
    mask: np.ndarray,
    voxel_score: np.ndarray | None = None,
) -> np.ndarray:
    """Quality-guided unwrapping of one 3-D phase volume inside `mask`; outside stays wrapped.

    Every 6-connected component of the mask is seeded at its best voxel (highest
    `voxel_quality`, computed here unless the caller has it), so islands are
    unwrapped too. Each component is then shifted by a multiple of 2*pi so that its median is
    within (-pi, pi]: a shimmed head has a near-zero mean frequency, and later echoes are
    predicted from this volume, so its absolute 2*pi multiple matters. Seeds and medians are
    taken inside each component's bounding box: scipy's labelled `maximum_position` and
    `median` sort the whole grid and took over a second each on a 160x192x64 head.
    """
    mask = np.asarray(mask, dtype=bool)
    result = np.asarray(phase_rad, dtype=np.float32).copy()
    labels, n_components = ndimage.label(mask)
    if n_components == 0:
        return result
    # The whole grid is grown, not the mask's bounding box: growing the box was 1.5x faster
    # (160x192x64 head), but its data-dependent shape made every new scan recompile, which a
    # warmed compilation cache (`monitor.recon.warmup`) cannot anticipate.
    quality = np.asarray(quality)
    score = np.asarray(voxel_quality(jnp.asarray(quality)) if voxel_score is None else voxel_score)
    boxes = ndimage.find_objects(labels)
    seeds = np.zeros(mask.shape, dtype=bool)
    for label, box in enumerate(boxes, start=1):
        inside = labels[box] == label
        best = np.unravel_index(np.argmax(np.where(inside, score[box], -np.inf)), inside.shape)
        seeds[tuple(s.start + i for s, i in zip(box, best, strict=True))] = True
    unwrapped = np.asarray(
        _grow(
            jnp.asarray(result),
            jnp.asarray(quality),
            jnp.asarray(mask),
            jnp.asarray(seeds),
            quality_levels(quality),
        )
    )
    shifts = np.zeros(n_components + 1)
    for label, box in enumerate(boxes, start=1):
        median = np.median(unwrapped[box][labels[box] == label])
        shifts[label] = TWO_PI * np.round(median / TWO_PI)
    return np.where(mask, unwrapped - shifts[labels], result).astype(np.float32)


@jax.jit
def temporal_unwrap(phase_rad: jnp.ndarray, predicted_rad: jnp.ndarray) -> jnp.ndarray:
    """Add the multiple of 2*pi that brings wrapped `phase_rad` closest to `predicted_rad`."""
    return phase_rad + TWO_PI * jnp.round((predicted_rad - phase_rad) / TWO_PI)
