import jax.numpy as jnp
import numpy as np
import pytest

from monitor.recon.neighbours import neighbour, zero_padded


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("step", [-1, 1])
def test_neighbour_is_the_shifted_volume_with_zeros_beyond_the_edge(axis, step):
    volume = np.random.default_rng(axis).random((5, 6, 7)).astype(np.float32)
    expected = np.roll(volume, -step, axis=axis)
    edge = [slice(None)] * 3
    edge[axis] = -1 if step > 0 else 0  # the face whose neighbour lies beyond the grid
    expected[tuple(edge)] = 0.0
    got = np.asarray(neighbour(zero_padded(jnp.asarray(volume)), axis, step))
    np.testing.assert_array_equal(got, expected)
