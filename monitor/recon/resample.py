"""Linear upsampling by two, for the stages that solve or smooth on a coarser grid first.

LBV's coarse-to-fine start and the phase-offset smoothing both work on 2x2x2 block means and
need the result back on the full grid. Both want the same interpolation: block centres kept in
place (a coarse value sits between its two fine voxels, which get 3/4 of it and 1/4 of the
neighbouring block), edges held constant. Written as shifted weighted sums rather than with
`jax.image.resize`, whose general resampler contracts a dense weight matrix per axis and cost
more than the smoothing it served.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

__all__ = ["doubled"]


@partial(jax.jit, static_argnames=("shape",))
def doubled(coarse: jnp.ndarray, shape: tuple[int, ...]) -> jnp.ndarray:
    """`coarse` upsampled by two along each of its axes, cropped to `shape`."""
    fine = jnp.asarray(coarse)
    for axis in range(fine.ndim):
        previous = jnp.concatenate(
            [_take(fine, axis, 0, 1), _take(fine, axis, 0, -1)], axis=axis
        )
        following = jnp.concatenate(
            [_take(fine, axis, 1, None), _take(fine, axis, -1, None)], axis=axis
        )
        low = 0.75 * fine + 0.25 * previous
        high = 0.75 * fine + 0.25 * following
        interleaved = jnp.stack([low, high], axis=axis + 1)
        new_shape = list(fine.shape)
        new_shape[axis] *= 2
        fine = interleaved.reshape(new_shape)
    return fine[tuple(slice(0, n) for n in shape)]


def _take(volume: jnp.ndarray, axis: int, start: int, stop: int | None) -> jnp.ndarray:
    """volume[start:stop] along `axis`."""
    index = [slice(None)] * volume.ndim
    index[axis] = slice(start, stop)
    return volume[tuple(index)]
