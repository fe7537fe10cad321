"""External segmentation from a DICOM SEG: built with highdicom on synthetic source images,
read back onto the acquisition grid, and measured exactly as the same labels from a NIfTI."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
from highdicom.sr import CodedConcept
from node_acquisitions import oblique_affine, small_acquisition

from dicom_node.assemble import AssembledAcquisition, assemble_study
from dicom_node.pipeline import _measure
from dicom_node.seg_input import SegInputError, match_segments, read_seg_labels
from dicom_node.synthetic_series import write_acquisition_series
from monitor.segment.external import labels_on_grid
from monitor.segment.structures import LABEL_IDS
from monitor.settings import SegmentationSettings, Settings
from monitor.types import QSMResult

SHAPE = (48, 48, 16)
VOXEL_MM = (2.0, 2.0, 2.0)
BLOCKS = {  # structure -> (x, y, z) start, size: plausible volumes at 8 ul per voxel
    "thalamus_left": ((4, 4, 3), (10, 8, 8)),  # 5.1 ml
    "thalamus_right": ((30, 4, 3), (10, 8, 8)),
    "caudate_left": ((4, 16, 4), (8, 6, 8)),  # 3.1 ml
    "caudate_right": ((30, 16, 4), (8, 6, 8)),
    "putamen_left": ((4, 26, 4), (8, 8, 8)),  # 4.1 ml
    "putamen_right": ((30, 26, 4), (8, 8, 8)),
    "globus_pallidus_left": ((4, 38, 5), (6, 4, 8)),  # 1.5 ml
    "globus_pallidus_right": ((30, 38, 5), (6, 4, 8)),
}
SCT_CODES = {"thalamus": "42695009", "putamen": "89278009", "globus_pallidus": "14738005"}
SIDE_CODES = {"left": ("7771000", "Left"), "right": ("24028007", "Right")}
ANATOMY = CodedConcept("91723000", "SCT", "Anatomical Structure")


def _truth() -> np.ndarray:
    """Our label ids on the acquisition grid (x = column, y = row, z = slice)."""
    labels = np.zeros(SHAPE, dtype=np.int16)
    for name, (start, size) in BLOCKS.items():
        labels[tuple(slice(s, s + n) for s, n in zip(start, size, strict=True))] = LABEL_IDS[name]
    return labels


def _description(number: int, name: str) -> hd.seg.SegmentDescription:
    """Thalamus, putamen, pallidum by SNOMED code + laterality; caudate by label text only."""
    structure, side = name.rsplit("_", 1)
    code = SCT_CODES.get(structure, "85756007")  # 85756007 "Tissue": not one of ours
    description = hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=f"{side.title()}-Caudate" if structure == "caudate" else f"segment {number}",
        segmented_property_category=ANATOMY,
        segmented_property_type=CodedConcept(code, "SCT", structure),
        algorithm_type="MANUAL",
    )
    if structure in SCT_CODES:
        laterality = CodedConcept(*SIDE_CODES[side][:1], "SCT", SIDE_CODES[side][1])
        item = description.SegmentedPropertyTypeCodeSequence[0]
        item.SegmentedPropertyTypeModifierCodeSequence = [laterality]
    return description


def _write_seg(sources: list[pydicom.Dataset], kind: str, path: Path) -> Path:
    """A SEG of the true labels; BINARY and FRACTIONAL also carry a brain segment that
    overlaps everything and must be ignored (a LABELMAP cannot hold overlaps)."""
    names = list(BLOCKS)
    truth = _truth().transpose(2, 1, 0)  # frames, rows, columns
    descriptions = [_description(i + 1, name) for i, name in enumerate(names)]
    if kind == "LABELMAP":
        pixels = np.zeros(truth.shape, dtype=np.uint8)
        for number, name in enumerate(names, start=1):
            pixels[truth == LABEL_IDS[name]] = number
    else:
        masks = [truth == LABEL_IDS[name] for name in names] + [np.ones(truth.shape, bool)]
        pixels = np.stack(masks, axis=-1).astype(np.float32 if kind == "FRACTIONAL" else np.uint8)
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=len(names) + 1,
                segment_label="Brain",
                segmented_property_category=ANATOMY,
                segmented_property_type=CodedConcept("12738006", "SCT", "Brain"),
                algorithm_type="MANUAL",
            )
        )
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=pixels,
        segmentation_type=kind,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=90,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="qsm-monitor tests",
        manufacturer_model_name="synthetic",
        software_versions="1",
        device_serial_number="0",
    )
    seg.save_as(path)
    return path


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
    return assembled, _write_seg(sources, "BINARY", root / "seg.dcm")


@pytest.mark.parametrize("kind", ["BINARY", "LABELMAP", "FRACTIONAL"])
def test_seg_read_back_onto_the_grid_gives_the_true_labels(series, kind):
    assembled, sources, root = series
    path = _write_seg(sources, kind, root / f"{kind}.dcm")
    external = read_seg_labels(path, assembled.frame_of_reference_uid)

    labels = labels_on_grid(external, assembled.acquisition.affine_ras, SHAPE)

    assert external.values.shape != SHAPE  # empty frames were omitted: a real resampling
    assert np.array_equal(labels, _truth())


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
    truth = _truth()
    aseg = SegmentationSettings().external_labels
    values = np.zeros(SHAPE, dtype=np.int16)
    for name, (number,) in aseg.items():
        values[truth == LABEL_IDS.get(name, -1)] = number
    nifti = tmp_path / "aseg.nii.gz"
    nib.save(nib.Nifti1Image(values, assembled.acquisition.affine_ras), nifti)
    qsm = _qsm(assembled)

    from_seg, seg_verdict, seg_labels = _measure(assembled, qsm, _settings(seg_path), None)
    from_nifti, nifti_verdict, nifti_labels = _measure(assembled, qsm, _settings(nifti), None)

    assert seg_verdict == nifti_verdict == {"method": "external", "reportable": True, "reason": ""}
    assert np.array_equal(seg_labels, truth)
    assert np.array_equal(nifti_labels, truth)
    assert set(from_seg) == {"thalamus", "caudate", "putamen", "globus_pallidus", "reference"}
    assert from_seg == from_nifti


def test_pipeline_withholds_numbers_for_a_seg_on_another_frame(study):
    assembled, seg_path = study
    other = pydicom.dcmread(seg_path)
    other.FrameOfReferenceUID = pydicom.uid.generate_uid()
    wrong = seg_path.with_name("other-frame.dcm")
    other.save_as(wrong)

    structures, verdict, labels = _measure(assembled, _qsm(assembled), _settings(wrong), None)

    assert structures == {}
    assert labels is None
    assert not verdict["reportable"]
    assert "another frame of reference" in verdict["reason"]
