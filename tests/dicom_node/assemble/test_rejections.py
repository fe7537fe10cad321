"""Anything that cannot become an Acquisition is reported with one plain reason, never raised."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from support.node_acquisitions import axial_affine, small_acquisition

from dicom_node.assemble.study import AssemblyReport, assemble_study
from dicom_node.assemble.vendor_phase import PhaseScalingError, StoredRange, phase_to_radians
from dicom_node.logs import uid_hash
from dicom_node.synthetic.modules import PatientIdentity
from dicom_node.synthetic.series import write_acquisition_series

SHAPE = (8, 6, 5, 2)


def single_reason(report: AssemblyReport) -> str:
    assert report.acquisitions == []
    assert len(report.rejected) == 1
    return report.rejected[0].reason


def rewrite(paths: list[Path], change: Callable[[Dataset], None]) -> None:
    for path in paths:
        ds = pydicom.dcmread(path)
        change(ds)
        ds.save_as(path)


def siemens(tmp_path: Path, **kwargs) -> list[Path]:
    return write_acquisition_series(small_acquisition(shape=SHAPE, **kwargs), tmp_path, "siemens")


def test_slice_missing_from_one_echo(tmp_path: Path) -> None:
    paths = siemens(tmp_path)
    dropped = [p for p in paths if pydicom.dcmread(p).EchoNumbers == 2][2]
    paths.remove(dropped)
    assert single_reason(assemble_study(paths)).startswith("missing slice")


def test_slice_missing_from_every_echo(tmp_path: Path) -> None:
    paths = siemens(tmp_path)
    middle = [
        p
        for p in paths
        if pydicom.dcmread(p).ImagePositionPatient == pydicom.dcmread(paths[2]).ImagePositionPatient
    ]
    assert len(middle) == 2 * SHAPE[3]
    kept = [p for p in paths if p not in middle]
    assert single_reason(assemble_study(kept)) == "missing slice: gap in slice positions"


def test_single_echo(tmp_path: Path) -> None:
    acq = small_acquisition(shape=(8, 6, 5, 1))
    report = assemble_study(write_acquisition_series(acq, tmp_path, "philips"))
    assert single_reason(report).startswith("single echo")


def test_magnitude_only(tmp_path: Path) -> None:
    paths = [p for p in siemens(tmp_path) if "M" in pydicom.dcmread(p).ImageType]
    assert single_reason(assemble_study(paths)) == "no phase images"


def test_phase_only(tmp_path: Path) -> None:
    paths = [p for p in siemens(tmp_path) if "P" in pydicom.dcmread(p).ImageType]
    assert single_reason(assemble_study(paths)) == "no magnitude images"


def test_magnitude_and_phase_with_different_geometry(tmp_path: Path) -> None:
    identity = PatientIdentity()
    first = write_acquisition_series(
        small_acquisition(shape=SHAPE), tmp_path / "a", "siemens", identity
    )
    shifted = axial_affine()
    second = write_acquisition_series(
        small_acquisition(shifted, shape=SHAPE), tmp_path / "b", "siemens", identity
    )
    magnitude = [p for p in first if "M" in pydicom.dcmread(p).ImageType]
    phase = [p for p in second if "P" in pydicom.dcmread(p).ImageType]
    assert single_reason(assemble_study(magnitude + phase)).startswith("geometry mismatch")


def test_non_uniform_slice_spacing(tmp_path: Path) -> None:
    paths = siemens(tmp_path, affine=axial_affine())

    def nudge_last_slice(ds: Dataset) -> None:
        position = [float(v) for v in ds.ImagePositionPatient]
        if ds.InstanceNumber % SHAPE[2] == 0:
            position[2] += 0.4
        ds.ImagePositionPatient = position

    rewrite(paths, nudge_last_slice)
    assert single_reason(assemble_study(paths)) == "non-uniform slice spacing"


@pytest.mark.parametrize("position", ["HFDR", "FFDL"])
def test_decubitus_is_refused(tmp_path: Path, position: str) -> None:
    paths = siemens(tmp_path)
    rewrite(paths, lambda ds: setattr(ds, "PatientPosition", position))
    assert "decubitus" in single_reason(assemble_study(paths))


def test_spin_echo_is_not_taken(tmp_path: Path) -> None:
    paths = siemens(tmp_path)
    rewrite(paths, lambda ds: setattr(ds, "ScanningSequence", "SE"))
    report = assemble_study(paths)
    assert report.acquisitions == []
    assert {r.reason for r in report.rejected} == {"not a gradient-echo sequence"}


def test_unreadable_file_does_not_stop_the_study(tmp_path: Path) -> None:
    paths = siemens(tmp_path)
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom at all")
    report = assemble_study([*paths, junk, tmp_path / "vanished.dcm"])
    assert len(report.acquisitions) == 1
    assert sorted(r.reason for r in report.rejected) == sorted(
        [
            f"unreadable file {uid_hash('junk.dcm')} (not DICOM)",
            f"unreadable file {uid_hash('vanished.dcm')} (cannot be read)",
        ]
    )


def test_undecodable_pixels_are_a_reason(tmp_path: Path) -> None:
    paths = siemens(tmp_path)
    rewrite(paths[:1], lambda ds: setattr(ds, "PixelData", b"\x00" * 10))
    assert single_reason(assemble_study(paths)).startswith("cannot decode pixel data")


def test_phase_decoding_rules() -> None:
    siemens_range = StoredRange(bits_stored=12, signed=False, slope=2.0, intercept=-4096.0)
    codes = np.array([0.0, 2048.0, 4095.0]) * 2 - 4096
    np.testing.assert_allclose(
        phase_to_radians(codes, siemens_range, "SIEMENS"), [-np.pi, 0.0, np.pi - 2 * np.pi / 4096]
    )
    ge_range = StoredRange(bits_stored=16, signed=True, slope=1.0, intercept=0.0)
    np.testing.assert_allclose(
        phase_to_radians(np.array([-3141.0, 1500.0]), ge_range, "GE"), [-3.141, 1.5]
    )
    with pytest.raises(PhaseScalingError):
        phase_to_radians(np.array([9000.0]), ge_range, "GE MEDICAL SYSTEMS")
    mrad_range = StoredRange(
        bits_stored=12, signed=False, slope=2000 * np.pi / 4095, intercept=-1000 * np.pi
    )
    np.testing.assert_allclose(phase_to_radians(np.array([1000.0]), mrad_range, "Philips"), [1.0])


def test_ge_private_image_kind_is_understood(tmp_path: Path) -> None:
    """Real GE files say ORIGINAL\\PRIMARY\\OTHER and put the kind in (0043,102F)."""
    paths = write_acquisition_series(small_acquisition(shape=SHAPE), tmp_path, "ge")

    def to_private_kind(ds: Dataset) -> None:
        code = 1 if "PHASE" in ds.ImageType else 0
        ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]
        ds.private_block(0x0043, "GEMS_PARM_01", create=True).add_new(0x2F, "SS", code)

    rewrite(paths, to_private_kind)
    report = assemble_study(paths)
    assert report.rejected == []
    assert report.acquisitions[0].acquisition.n_echoes == SHAPE[3]


def test_malformed_header_is_unreadable_not_raised(tmp_path: Path) -> None:
    paths = siemens(tmp_path)
    rewrite(paths[:1], lambda ds: delattr(ds, "SOPInstanceUID"))
    report = assemble_study(paths)
    assert report.acquisitions == []
    reasons = {r.reason for r in report.rejected}
    assert (
        f"unreadable file {uid_hash(paths[0].name)} (malformed header: AttributeError)" in reasons
    )
    assert not any(paths[0].stem in reason for reason in reasons)  # the UID never shows


def test_unknown_value_representation_is_a_rejection_not_a_stalled_study(tmp_path: Path) -> None:
    """A bit flip that turns a VR into "ZZ" passes the listener and once raised
    NotImplementedError out of assembly, so the study was retried forever."""
    paths = siemens(tmp_path)
    raw = paths[0].read_bytes()
    element = b"\x18\x00\x00\x51CS"  # (0018,5100) Patient Position, explicit VR CS
    assert element in raw
    paths[0].write_bytes(raw.replace(element, b"\x18\x00\x00\x51ZZ", 1))

    report = assemble_study(paths)

    reasons = {r.reason for r in report.rejected}
    assert f"unreadable file {uid_hash(paths[0].name)} (malformed header: NotImplementedError)" in (
        reasons
    )
    assert report.acquisitions == []  # the series now misses that slice, and says so
    assert any("missing slice" in reason or "differ" in reason for reason in reasons)


def test_field_strength_falls_back_to_imaging_frequency(tmp_path: Path) -> None:
    paths = siemens(tmp_path)
    rewrite(paths, lambda ds: delattr(ds, "MagneticFieldStrength"))
    report = assemble_study(paths)
    assert report.rejected == []
    assert report.acquisitions[0].acquisition.b0_tesla == pytest.approx(3.0, rel=1e-6)
    rewrite(paths, lambda ds: delattr(ds, "ImagingFrequency"))
    assert single_reason(assemble_study(paths)).startswith("no field strength")
