"""B0 tilt in the head from the subject-to-template affine (QC's `b0_tilt_deg`)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.spatial.transform import Rotation

from monitor.segment.registration import b0_tilt_deg


def _affine(axis: str, degrees: float, scale: float = 1.0) -> sitk.AffineTransform:
    matrix = Rotation.from_euler(axis, degrees, degrees=True).as_matrix() * scale
    return sitk.AffineTransform(matrix.ravel().tolist(), (3.0, -7.0, 11.0))


@pytest.mark.parametrize("degrees", [-20.0, -4.0, 0.0, 12.5])
def test_turn_about_the_front_back_axis_tilts_b0_towards_a_side(degrees):
    """LPS y runs front to back; turning about it by +a carries z towards +x (the left)."""
    towards_left, towards_back = b0_tilt_deg(_affine("y", degrees))
    assert towards_left == pytest.approx(degrees, abs=1e-9)
    assert towards_back == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("degrees", [-18.0, 7.0])
def test_nod_tilts_b0_towards_the_front_or_back(degrees):
    """Turning about x by +a carries z towards -y (the front)."""
    towards_left, towards_back = b0_tilt_deg(_affine("x", degrees, scale=1.1))
    assert towards_left == pytest.approx(0.0, abs=1e-9)
    assert towards_back == pytest.approx(-degrees, abs=1e-9)


def test_turn_about_b0_itself_tilts_nothing_and_the_sign_of_b0_does_not_matter():
    assert b0_tilt_deg(_affine("z", 30.0)) == pytest.approx((0.0, 0.0), abs=1e-9)
    flipped = sitk.AffineTransform(np.diag([1.0, -1.0, -1.0]).ravel().tolist(), (0, 0, 0))
    assert b0_tilt_deg(flipped) == pytest.approx((0.0, 0.0), abs=1e-9)
