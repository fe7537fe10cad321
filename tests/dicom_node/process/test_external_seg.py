"""External segmentation from a DICOM SEG: built with highdicom on synthetic source images,
read back onto the acquisition grid, and measured exactly as the same labels from a NIfTI."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from support.node_acquisitions import oblique_affine, small_acquisition
from support.seg_helpers import SHAPE, VOXEL_MM, truth_labels, write_seg

from dicom_node.assemble.seg_input import SegInputError, match_segments, read_seg_labels
from dicom_node.assemble.study import AssembledAcquisition, assemble_study
from dicom_node.process.pipeline import segment_and_measure
from dicom_node.synthetic.series import write_acquisition_series
from monitor.segment.external import labels_on_grid
from monitor.segment.structures import LABEL_IDS
from monitor.settings import SegmentationSettings, Settings
from monitor.types import QSMResult


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory):
    """Synthetic Siemens series on an oblique 2 mm grid: the assembled acquisition and the
    first-echo magnitude slices the SEGs are derived from."""
    root = tmp_path_factory.mktemp("seg")
    acq = small_acquisition(oblique_affine(VOXEL_MM), (*SHAPE, 2))
    paths = write_acquisition_series(acq, root / "images")
    (assembled,) = assemble_study(paths).acquisitions
    sources = [pydicom.dcmread(p) for p in paths]
    first_echo = [d for d in sources if d.SeriesNumber == 10 and int(d.EchoNumbers) == 1]
    first_echo.sort(key=lambda d: int(d.InstanceNumber))
    return assembled, first_echo, root


@pytest.fixture(scope="module")
def study(series) -> tuple[AssembledAcquisition, Path]:
    assembled, sources, root = series
    return assembled, write_seg(sources, "BINARY", root / "seg.dcm")


@pytest.mark.parametrize("kind", ["BINARY", "LABELMAP", "FRACTIONAL"])
def test_seg_read_back_onto_the_grid_gives_the_true_labels(series, kind):
    assembled, sources, root = series
    path = write_seg(sources, kind, root / f"{kind}.dcm")
    external = read_seg_labels(path, assembled.frame_of_reference_uid)

    labels = labels_on_grid(external, assembled.acquisition.affine_ras, SHAPE)

    assert external.values.shape != SHAPE  # empty frames were omitted: a real resampling
    assert np.array_equal(labels, truth_labels())


def test_seg_passes_dciodvfy(study):
    if shutil.which("dciodvfy") is None:
        pytest.skip("dicom3tools dciodvfy not installed")
    _, seg_path = study
    run = subprocess.run(["dciodvfy", str(seg_path)], capture_output=True, text=True, check=False)
    errors = [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]
    assert errors == []


def test_seg_on_another_frame_of_reference_is_refused(study):
    _, seg_path = study
    with pytest.raises(SegInputError, match="another frame of reference"):
        read_seg_labels(seg_path, "1.2.3.4")


def test_segments_matched_by_codes_then_label_text():
    def segment(number: int, label: str, code: str, side_code: str | None = None):
        item = pydicom.Dataset()
        item.CodeValue, item.CodingSchemeDesignator = code, "SCT"
        if side_code:
            modifier = pydicom.Dataset()
            modifier.CodeValue, modifier.CodingSchemeDesignator = side_code, "SCT"
            item.SegmentedPropertyTypeModifierCodeSequence = [modifier]
        ds = pydicom.Dataset()
        ds.SegmentNumber, ds.SegmentLabel = number, label
        ds.SegmentedPropertyTypeCodeSequence = [item]
        return ds

    label_map = match_segments(
        [
            segment(1, "x", "14738005", "24028007"),  # pallidus, right by code
            segment(2, "Left-Thalamus-Proper", "42695009"),  # code, side from text
            segment(3, "Right-Lateral-Ventricle", "85756007"),  # text only
            segment(4, "Left-Pallidum", "85756007"),
            segment(5, "thalamus", "42695009"),  # no side anywhere: ignored
            segment(6, "Left-Hippocampus", "85756007"),  # not ours: ignored
        ]
    )

    assert label_map == {
        "globus_pallidus_right": [1],
        "thalamus_left": [2],
        "lateral_ventricle_right": [3],
        "globus_pallidus_left": [4],
    }


def _qsm(assembled: AssembledAcquisition) -> QSMResult:
    rng = np.random.default_rng(3)
    chi = rng.normal(0.0, 0.05, SHAPE)
    acq = assembled.acquisition
    return QSMResult(
        chi_ppm=chi,
        mask=np.ones(SHAPE, dtype=bool),
        local_field_ppm=chi,
        total_field_ppm=chi,
        affine_ras=acq.affine_ras,
        voxel_mm=acq.voxel_mm,
        reference="whole_brain",
    )


def _settings(external_path: Path) -> Settings:
    config = SegmentationSettings(method="external", external_path=external_path)
    return Settings(segmentation=config)


def test_pipeline_measures_the_seg_as_the_same_labels_from_nifti(study, tmp_path: Path):
    assembled, seg_path = study
    truth = truth_labels()
    aseg = SegmentationSettings().external_labels
    values = np.zeros(SHAPE, dtype=np.int16)
    for name, (number,) in aseg.items():
        values[truth == LABEL_IDS.get(name, -1)] = number
    nifti = tmp_path / "aseg.nii.gz"
    nib.save(nib.Nifti1Image(values, assembled.acquisition.affine_ras), nifti)
    qsm = _qsm(assembled)

    from_seg, seg_verdict, seg_labels = segment_and_measure(
        assembled, qsm, _settings(seg_path), None
    )
    from_nifti, nifti_verdict, nifti_labels = segment_and_measure(
        assembled, qsm, _settings(nifti), None
    )

    expected = {"method": "external", "reportable": True, "reason": ""}
    expected |= {"withheld": {}, "registration_path": None, "b0_tilt_deg": None}
    assert seg_verdict == nifti_verdict == expected
    assert np.array_equal(seg_labels, truth)
    assert np.array_equal(nifti_labels, truth)
    assert set(from_seg) == {
        "thalamus",
        "caudate",
        "putamen",
        "globus_pallidus",
        "reference",
        "whole_brain_mean_ppb",
    }
    assert from_seg == from_nifti


def test_pipeline_withholds_numbers_for_a_seg_on_another_frame(study):
    assembled, seg_path = study
    other = pydicom.dcmread(seg_path)
    other.FrameOfReferenceUID = pydicom.uid.generate_uid()
    wrong = seg_path.with_name("other-frame.dcm")
    other.save_as(wrong)

    structures, verdict, labels = segment_and_measure(
        assembled, _qsm(assembled), _settings(wrong), None
    )

    assert structures == {}
    assert labels is None
    assert not verdict["reportable"]
    assert "another frame of reference" in verdict["reason"]
