"""Round trips Acquisition -> vendor DICOM -> assemble_study, for every layout and geometry."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import JPEGLSLossless, RLELossless
from support.node_acquisitions import axial_affine, oblique_affine, small_acquisition

from dicom_node.assemble.study import AssembledAcquisition, assemble_study
from dicom_node.synthetic.modules import PatientIdentity
from dicom_node.synthetic.series import VENDOR_STYLES, write_acquisition_series
from monitor.types import Acquisition

SIEMENS_PHASE_STEP_RAD = 2 * np.pi / 4096


def only_acquisition(paths: list[Path]) -> AssembledAcquisition:
    report = assemble_study(paths)
    assert report.rejected == []
    assert len(report.acquisitions) == 1
    return report.acquisitions[0]


def assert_matches(got: Acquisition, want: Acquisition, phase_tol_rad: float) -> None:
    magnitude_step = float(want.magnitude.max()) / 4095
    np.testing.assert_allclose(got.magnitude, want.magnitude, atol=magnitude_step)
    phase_error = np.angle(np.exp(1j * (got.phase_rad - want.phase_rad)))
    assert np.max(np.abs(phase_error)) <= phase_tol_rad
    assert got.te_s == pytest.approx(want.te_s, abs=1e-9)
    assert got.voxel_mm == pytest.approx(want.voxel_mm, abs=1e-5)
    np.testing.assert_allclose(got.affine_ras, want.affine_ras, atol=1e-4)
    np.testing.assert_allclose(got.b0_dir_voxel, want.b0_dir_voxel, atol=1e-5)
    assert got.b0_tesla == pytest.approx(want.b0_tesla)


@pytest.mark.parametrize("style", VENDOR_STYLES)
@pytest.mark.parametrize("affine", [oblique_affine(), axial_affine()], ids=["oblique", "axial"])
def test_round_trip_in_shuffled_order(tmp_path: Path, style: str, affine: np.ndarray) -> None:
    acq = small_acquisition(affine)
    paths = write_acquisition_series(acq, tmp_path, style)
    random.Random(3).shuffle(paths)
    assembled = only_acquisition(paths)
    # Half a code step of the coarsest phase coding in use (12-bit full circle).
    assert_matches(assembled.acquisition, acq, SIEMENS_PHASE_STEP_RAD / 2 + 1e-6)


def test_oblique_b0_direction_is_not_the_slice_axis(tmp_path: Path) -> None:
    acq = small_acquisition(oblique_affine())
    got = only_acquisition(write_acquisition_series(acq, tmp_path, "siemens")).acquisition
    assert abs(got.b0_dir_voxel[2]) < 0.99
    assert abs(got.b0_dir_voxel[2]) == pytest.approx(
        np.cos(np.deg2rad(17)) * np.cos(np.deg2rad(11)), abs=1e-4
    )


def test_philips_phase_in_radians(tmp_path: Path) -> None:
    acq = small_acquisition()
    paths = write_acquisition_series(acq, tmp_path, "philips", philips_phase_unit="rad")
    assert_matches(only_acquisition(paths).acquisition, acq, SIEMENS_PHASE_STEP_RAD / 2 + 1e-6)


def test_reversed_slice_direction_keeps_every_voxel_in_place(tmp_path: Path) -> None:
    """Slices are sorted along row x column; a left-handed input comes back z-reversed."""
    flipped = oblique_affine()
    flipped[:3, 2] *= -1
    acq = small_acquisition(flipped)
    got = only_acquisition(write_acquisition_series(acq, tmp_path, "ge")).acquisition
    np.testing.assert_allclose(
        got.magnitude, acq.magnitude[:, :, ::-1], atol=acq.magnitude.max() / 4095
    )
    nz = acq.shape[2]
    for k in (0, nz - 1):
        np.testing.assert_allclose(
            got.affine_ras @ [3, 5, nz - 1 - k, 1], acq.affine_ras @ [3, 5, k, 1], atol=1e-4
        )


@pytest.mark.parametrize(
    ("style", "syntax"),
    [
        ("siemens", RLELossless),
        ("enhanced", RLELossless),
        ("siemens", JPEGLSLossless),
        ("ge_real_imaginary", JPEGLSLossless),
    ],
)
def test_compressed_transfer_syntaxes_round_trip(tmp_path: Path, style: str, syntax) -> None:
    acq = small_acquisition(shape=(16, 12, 4, 2))
    paths = write_acquisition_series(acq, tmp_path, style, transfer_syntax=syntax)
    assert_matches(only_acquisition(paths).acquisition, acq, SIEMENS_PHASE_STEP_RAD / 2 + 1e-6)


def test_source_identity_and_idempotency_key(tmp_path: Path) -> None:
    identity = PatientIdentity(
        patient_id="P77",
        birth_date="19451212",
        sex="M",
        study_date="20240305",
        study_uid="1.2.826.0.1.99",
    )
    acq = small_acquisition(shape=(8, 6, 4, 2))
    paths = write_acquisition_series(acq, tmp_path / "a", "siemens", identity)
    resent = tmp_path / "a" / "resent.dcm"
    shutil.copy(paths[0], resent)
    first = only_acquisition(paths)
    again = only_acquisition([resent, *reversed(paths)])
    assert first.idempotency_key == again.idempotency_key
    assert len(first.sop_instance_uids) == len(paths)
    assert len(first.series_uids) == 2
    assert (
        first.source.patient_id,
        first.source.patient_birth_date,
        first.source.patient_sex,
        first.source.study_date,
        first.study_uid,
    ) == ("P77", "19451212", "M", "20240305", "1.2.826.0.1.99")
    assert "P77" not in repr(first) and "P77" not in first.acquisition.label
    other = only_acquisition(write_acquisition_series(acq, tmp_path / "b", "siemens", identity))
    assert other.idempotency_key != first.idempotency_key


def test_two_acquisitions_in_one_study(tmp_path: Path) -> None:
    identity = PatientIdentity()
    acq = small_acquisition(shape=(8, 6, 4, 2))
    paths = write_acquisition_series(acq, tmp_path, "siemens", identity, first_series_number=5)
    paths += write_acquisition_series(acq, tmp_path, "siemens", identity, first_series_number=7)
    report = assemble_study(paths)
    assert report.rejected == []
    pairs = sorted(a.acquisition.label for a in report.acquisitions)
    assert pairs == ["SIEMENS series 5+6", "SIEMENS series 7+8"]
