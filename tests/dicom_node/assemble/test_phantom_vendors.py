"""A realistic (oblique, noisy, brain-shaped) phantom survives the DICOM round trip."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from dicom_node.assemble.study import assemble_study
from dicom_node.synthetic.series import write_acquisition_series
from monitor.phantom.simulate import FAST_CONFIG, simulate_phantom
from monitor.types import Acquisition


@pytest.fixture(scope="module")
def phantom_acquisition() -> Acquisition:
    config = dataclasses.replace(
        FAST_CONFIG, shape=(40, 48, 20), voxel_mm=(4.0, 4.0, 6.0), n_echoes=3
    )
    return simulate_phantom(config).acquisition


@pytest.mark.slow
@pytest.mark.parametrize("style", ["siemens", "enhanced"])
def test_phantom_round_trip(tmp_path: Path, phantom_acquisition: Acquisition, style: str) -> None:
    want = phantom_acquisition
    report = assemble_study(write_acquisition_series(want, tmp_path, style))
    assert report.rejected == []
    got = report.acquisitions[0].acquisition
    phase_error = np.angle(np.exp(1j * (got.phase_rad - want.phase_rad)))
    assert np.max(np.abs(phase_error)) <= np.pi / 4096 + 1e-5
    np.testing.assert_allclose(got.magnitude, want.magnitude, atol=want.magnitude.max() / 4095)
    np.testing.assert_allclose(got.affine_ras, want.affine_ras, atol=1e-4)
    np.testing.assert_allclose(got.b0_dir_voxel, want.b0_dir_voxel, atol=1e-5)
    assert got.te_s == pytest.approx(want.te_s)
    assert got.voxel_mm == pytest.approx(want.voxel_mm, abs=1e-5)
