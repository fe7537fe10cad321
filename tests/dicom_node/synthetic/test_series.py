"""Synthetic DICOM writer: valid objects (dciodvfy), vendor layouts, identity and geometry."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from support.node_acquisitions import small_acquisition
from support.node_helpers import DCM2NIIX

from dicom_node.geometry import affine_from_geometry
from dicom_node.synthetic.modules import PatientIdentity
from dicom_node.synthetic.series import VENDOR_STYLES, write_acquisition_series

DCIODVFY = "/usr/bin/dciodvfy"


@pytest.mark.skipif(not Path(DCIODVFY).exists(), reason="dicom3tools not installed")
@pytest.mark.parametrize("style", VENDOR_STYLES)
def test_dciodvfy_reports_no_errors(tmp_path: Path, style: str) -> None:
    paths = write_acquisition_series(small_acquisition(shape=(8, 6, 3, 2)), tmp_path, style)
    for path in {paths[0], paths[-1]}:
        result = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True)
        report = result.stdout + result.stderr
        errors = [line for line in report.splitlines() if line.startswith("Error")]
        assert errors == [], f"{style}: {errors}"
        assert "MRImage" in report


def test_identity_is_written_for_longitudinal_demo(tmp_path: Path) -> None:
    identity = PatientIdentity(
        patient_id="P123",
        patient_name="Doe^Jane",
        birth_date="19500203",
        sex="F",
        study_date="20250607",
        study_uid="1.2.3.4.5",
        accession_number="ACC9",
    )
    paths = write_acquisition_series(
        small_acquisition(shape=(8, 6, 3, 2)), tmp_path, "philips", identity
    )
    ds = pydicom.dcmread(paths[0])
    assert (ds.PatientID, str(ds.PatientName), ds.PatientBirthDate, ds.PatientSex) == (
        "P123",
        "Doe^Jane",
        "19500203",
        "F",
    )
    assert (ds.StudyDate, ds.StudyInstanceUID, ds.AccessionNumber) == (
        "20250607",
        "1.2.3.4.5",
        "ACC9",
    )


def test_siemens_layout_two_series_with_twelve_bit_phase(tmp_path: Path) -> None:
    acq = small_acquisition(shape=(8, 6, 3, 2))
    paths = write_acquisition_series(acq, tmp_path, "siemens")
    datasets = [pydicom.dcmread(p) for p in paths]
    by_type = {tuple(ds.ImageType): ds.SeriesInstanceUID for ds in datasets}
    assert set(by_type) == {("ORIGINAL", "PRIMARY", "M", "ND"), ("ORIGINAL", "PRIMARY", "P", "ND")}
    assert len(set(by_type.values())) == 2
    assert len(datasets) == 2 * 3 * 2
    phase = [ds for ds in datasets if "P" in ds.ImageType]
    assert all(
        (ds.RescaleSlope, ds.RescaleIntercept, ds.BitsStored) == (2, -4096, 12) for ds in phase
    )
    assert max(int(ds.pixel_array.max()) for ds in phase) <= 4095
    assert sorted({float(ds.EchoTime) for ds in datasets}) == pytest.approx([4.0, 12.0])


def test_oblique_geometry_attributes_reproduce_affine(tmp_path: Path) -> None:
    acq = small_acquisition(shape=(8, 6, 3, 2))
    paths = write_acquisition_series(acq, tmp_path, "siemens")
    first, second = (pydicom.dcmread(p) for p in paths[:2])
    affine = affine_from_geometry(
        np.array(first.ImageOrientationPatient, dtype=float),
        np.array(first.PixelSpacing, dtype=float),
        np.array(first.ImagePositionPatient, dtype=float),
        np.array(second.ImagePositionPatient, dtype=float)
        - np.array(first.ImagePositionPatient, dtype=float),
    )
    np.testing.assert_allclose(affine, acq.affine_ras, atol=1e-5)
    assert float(first.SpacingBetweenSlices) == pytest.approx(1.5)


def test_dcm2niix_splits_siemens_style_into_magnitude_and_phase_per_echo(tmp_path: Path) -> None:
    acq = small_acquisition(shape=(8, 6, 3, 3))
    write_acquisition_series(acq, tmp_path / "dicom", "siemens")
    out = tmp_path / "nii"
    out.mkdir()
    subprocess.run(
        [DCM2NIIX, "-o", str(out), str(tmp_path / "dicom")], check=True, capture_output=True
    )
    sidecars = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    phase = [s for s in sidecars if "P" in s["ImageType"]]
    magnitude = [s for s in sidecars if "M" in s["ImageType"]]
    assert len(phase) == 3 and len(magnitude) == 3
    assert sorted(s["EchoTime"] for s in phase) == pytest.approx(list(acq.te_s))
    assert all(s["MagneticFieldStrength"] == 3 for s in sidecars)
