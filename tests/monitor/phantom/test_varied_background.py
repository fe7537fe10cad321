"""The varied heads' GRE phase carries what a real head adds to the brain's own field: air
(+9.4 ppm against tissue) around the head and in the sinus, bone, and brain beyond the slab.
Without it, background removal is never tested on them (a total-field inversion that ignores
the background looked excellent on them and diverged on every head that has one)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from support.varied_heads import VariedHead, field_sources, simulate_head

from monitor.phantom import forward_field_ppm
from monitor.types import b0_direction_in_voxel_axes

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def head() -> VariedHead:
    return simulate_head(302)


def test_sources_hold_air_and_bone_and_match_the_truth_inside_the_brain(head) -> None:
    sources, slab = field_sources(head)
    assert sources.max() > 8.0 and sources.min() < -1.0  # air (blurred) and bone
    assert all(g > n for g, n in zip(sources.shape, head.true_chi_ppm.shape, strict=True))
    inner = ndimage.binary_erosion(head.brain_mask, iterations=2)
    np.testing.assert_allclose(sources[slab][inner], head.true_chi_ppm[inner], atol=1e-5)


def test_the_brain_sees_a_background_field_of_a_fraction_of_a_ppm(head) -> None:
    voxel_mm = tuple(float(v) for v in np.linalg.norm(head.affine_ras[:3, :3], axis=0))
    b0_dir = b0_direction_in_voxel_axes(head.affine_ras)
    sources, slab = field_sources(head)
    sources[slab][head.brain_mask] = 0.0  # everything but the brain: the background's sources
    background = forward_field_ppm(sources.astype(np.float64), voxel_mm, b0_dir)[slab]
    background = background[head.brain_mask]
    spread = np.percentile(background, 99) - np.percentile(background, 1)
    assert 0.3 < spread < 5.0, spread  # real heads: tenths of a ppm up to a few near sinuses
