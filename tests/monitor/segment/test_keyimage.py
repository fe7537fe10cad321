"""The key image tells a reader where patient left is and when QC failed."""

from __future__ import annotations

import numpy as np
import pytest
from support.images import red_pixel_count

from monitor.segment.keyimage import edge_letters, write_key_image


@pytest.mark.parametrize(
    ("affine", "axis", "letters"),
    [
        (np.diag([1.0, 1.0, 2.0, 1.0]), 0, ("L", "R")),
        (np.diag([-1.0, -1.0, 2.0, 1.0]), 0, ("R", "L")),  # LPS-like storage order
        (np.diag([-1.0, -1.0, 2.0, 1.0]), 1, ("A", "P")),
        (np.diag([1.0, 1.0, -2.0, 1.0]), 2, ("S", "I")),
        # a sagittal slab: voxel axis 0 runs posterior to anterior
        (np.array([[0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]], float), 0, ("P", "A")),
    ],
)
def test_edge_letters_follow_the_affine(affine, axis, letters):
    assert edge_letters(affine, axis) == letters


def test_a_failed_qc_is_written_across_the_image(tmp_path):
    rng = np.random.default_rng(0)
    magnitude = rng.uniform(0.0, 1.0, (40, 48, 20))
    chi = rng.normal(0.0, 0.02, magnitude.shape)
    labels = np.zeros(magnitude.shape, dtype=np.int16)
    labels[12:20, 14:24, 8:12] = 1
    args = (magnitude, chi, labels, (1.0, 1.0, 2.0))

    fine = write_key_image(tmp_path / "ok.png", *args, affine_ras=np.eye(4))
    failed = write_key_image(
        tmp_path / "failed.png", *args, affine_ras=np.eye(4), qc_failure="thalamus too large"
    )

    assert red_pixel_count(failed) > 20 * max(red_pixel_count(fine), 100)
