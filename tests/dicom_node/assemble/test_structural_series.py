"""A study that also holds a same-session MPRAGE and a localiser: the GRE is still paired
correctly, the T1 rides with it, and neither single-echo series takes the GRE's phase."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from support.node_acquisitions import axial_affine, oblique_affine, small_acquisition

from dicom_node.assemble.study import assemble_study
from dicom_node.synthetic.modules import PatientIdentity
from dicom_node.synthetic.series import write_acquisition_series
from dicom_node.synthetic.structural import write_single_echo_series


def _t1_volume(shape: tuple[int, int, int]) -> np.ndarray:
    return np.random.default_rng(11).uniform(100.0, 900.0, shape)


def _study(tmp_path: Path, identity: PatientIdentity) -> tuple[list[Path], np.ndarray]:
    """Siemens order: localiser 1, MPRAGE 5, GRE magnitude 10 and phase 11, one frame."""
    t1_affine = axial_affine((1.0, 1.0, 1.0))
    t1 = _t1_volume((40, 36, 20))
    paths = write_single_echo_series(
        t1, t1_affine, tmp_path, identity, series_number=5, description="t1_mprage_sag"
    )
    paths += write_single_echo_series(
        _t1_volume((32, 24, 3)),
        oblique_affine(),
        tmp_path,
        identity,
        series_number=1,
        description="localizer",
        inversion_time_ms=None,
        echo_time_ms=4.0,
    )
    paths += write_acquisition_series(
        small_acquisition(), tmp_path, "siemens", identity, first_series_number=10
    )
    random.Random(5).shuffle(paths)
    return paths, t1


def test_gre_is_paired_despite_t1_and_localiser_and_the_t1_rides_along(tmp_path):
    paths, t1 = _study(tmp_path, PatientIdentity())

    report = assemble_study(paths)

    assert len(report.acquisitions) == 1
    assembled = report.acquisitions[0]
    assert assembled.acquisition.n_echoes == 3
    assert assembled.t1 is not None
    np.testing.assert_allclose(assembled.t1.intensity, t1, atol=float(t1.max()) / 4095)
    np.testing.assert_allclose(assembled.t1.affine_ras, axial_affine((1.0, 1.0, 1.0)), atol=1e-4)
    assert "(T1)" in assembled.t1.label
    t1_files = {p for p in paths if p.name.startswith("s005_")}
    assert t1_files <= set(assembled.input_paths)
    assert [r.reason for r in report.rejected] == ["no phase images"]  # the localiser alone


def test_a_t1_on_another_frame_of_reference_is_not_used(tmp_path):
    identity = PatientIdentity()
    paths = write_acquisition_series(small_acquisition(), tmp_path, "siemens", identity)
    other_session = PatientIdentity(study_uid=identity.study_uid)
    paths += write_single_echo_series(
        _t1_volume((20, 20, 10)),
        axial_affine((1.0, 1.0, 1.0)),
        tmp_path,
        other_session,
        series_number=5,
        description="t1_mprage",
    )

    report = assemble_study(paths)

    assert len(report.acquisitions) == 1 and report.acquisitions[0].t1 is None
    assert [r.reason for r in report.rejected] == [
        "T1-weighted series without a GRE acquisition on its frame of reference"
    ]


def test_without_a_t1_the_acquisition_is_gre_only(tmp_path):
    paths = write_acquisition_series(small_acquisition(), tmp_path, "siemens", PatientIdentity())

    report = assemble_study(paths)

    assert report.rejected == [] and report.acquisitions[0].t1 is None


def test_discovery_from_headers_agrees_with_assembly(tmp_path):
    """Backfill's header-only discovery: same key and files (T1 included) as assembly."""
    from dicom_node.assemble.study import discover_study

    paths, _ = _study(tmp_path, PatientIdentity())

    (assembled,) = assemble_study(paths).acquisitions
    discovery = discover_study(paths)

    (planned,) = discovery.acquisitions
    assert planned.idempotency_key == assembled.idempotency_key
    assert planned.input_paths == assembled.input_paths
    assert planned.study_uid == assembled.study_uid
    assert planned.frame_of_reference_uid == assembled.frame_of_reference_uid
    assert discovery.segmentations == []
