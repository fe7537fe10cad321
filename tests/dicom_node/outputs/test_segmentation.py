"""DICOM SEG of the labels, and the SR's TID 1411 volumetric groups that reference it."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from support.outputs_support import (
    SIDE_CODES,
    STRUCTURES,
    assembled_study,
    dsrdump,
    make_record,
    record_side,
    reported_numbers,
    save,
    validator_errors,
    walk,
)

from dicom_node.assemble.study import AssembledAcquisition
from dicom_node.outputs.common import read_sources
from dicom_node.outputs.qsm_map import build_parametric_map
from dicom_node.outputs.segmentation import SEGMENT_NUMBERS, build_segmentation
from dicom_node.outputs.sr import build_measurement_report
from monitor.record import ProcessingRecord
from monitor.segment.structures import LABEL_IDS
from monitor.settings import Settings


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> AssembledAcquisition:
    return assembled_study(tmp_path_factory.mktemp("source"))


def known_labels(study: AssembledAcquisition) -> np.ndarray:
    """Blocks of every label (reported and CSF) at different places, plus random voxels, so a
    swapped axis or slice would move them."""
    labels = np.zeros(study.acquisition.shape, dtype=np.int16)
    for label in range(1, max(LABEL_IDS.values()) + 1):
        labels[3 * label - 2 : 3 * label, 4 + label : 12 + label, label % 5 : 3 + label % 5] = label
    rng = np.random.default_rng(3)
    labels[rng.random(labels.shape) < 0.02] = LABEL_IDS["putamen_left"]
    return labels


def test_segmentation_is_valid_and_round_trips_by_position(
    study: AssembledAcquisition, tmp_path: Path
) -> None:
    labels = known_labels(study)
    seg = build_segmentation(
        ProcessingRecord.from_json(make_record(study)),
        read_sources(study.reference_paths),
        labels,
        study.acquisition.affine_ras,
        settings=Settings(),
    )
    path = save(seg, tmp_path / "seg.dcm")
    assert validator_errors(path) == []
    back = dcmread(path)
    sources = [dcmread(p, stop_before_pixels=True) for p in study.reference_paths]
    positions = [np.asarray(s.ImagePositionPatient, dtype=float) for s in sources]
    rebuilt = np.zeros_like(labels)
    for frame, group in zip(back.pixel_array, back.PerFrameFunctionalGroupsSequence, strict=True):
        number = int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        where = np.asarray(group.PlanePositionSequence[0].ImagePositionPatient, dtype=float)
        z = int(np.argmin([np.linalg.norm(where - p) for p in positions]))
        assert np.linalg.norm(where - positions[z]) < 1e-3
        rebuilt[:, :, z][frame.T > 0] = number
    reported = np.where(np.isin(labels, list(SEGMENT_NUMBERS.values())), labels, 0)
    np.testing.assert_array_equal(rebuilt, reported)
    described = {
        int(d.SegmentNumber): (
            d.SegmentedPropertyTypeCodeSequence[0].CodeValue,
            d.SegmentedPropertyTypeCodeSequence[0]
            .SegmentedPropertyTypeModifierCodeSequence[0]
            .CodeValue,
        )
        for d in back.SegmentSequence
    }
    assert described[LABEL_IDS["caudate_right"]] == ("11000004", "24028007")
    assert described[LABEL_IDS["globus_pallidus_left"]] == ("14738005", "7771000")
    assert back.FrameOfReferenceUID == sources[0].FrameOfReferenceUID


def test_no_reported_structure_is_refused(study: AssembledAcquisition) -> None:
    csf_only = np.zeros(study.acquisition.shape, dtype=np.int16)
    csf_only[4:8, 4:8, 2:4] = LABEL_IDS["lateral_ventricle_left"]
    with pytest.raises(ValueError, match="no reported structure"):
        build_segmentation(
            ProcessingRecord.from_json(make_record(study)),
            read_sources(study.reference_paths),
            csf_only,
            study.acquisition.affine_ras,
            settings=Settings(),
        )


def template_of(group: Dataset) -> str:
    return str(group.ContentTemplateSequence[0].TemplateIdentifier)


def test_sr_side_groups_are_volumetric_rois_on_their_segments(
    study: AssembledAcquisition, tmp_path: Path
) -> None:
    record, sources = make_record(study), read_sources(study.reference_paths)
    affine = study.acquisition.affine_ras
    labels = known_labels(study)
    labels[labels == LABEL_IDS["caudate_left"]] = 0  # a structure the labels lack
    seg = build_segmentation(
        ProcessingRecord.from_json(record), sources, labels, affine, settings=Settings()
    )
    chi = np.random.default_rng(1).normal(0.0, 0.05, labels.shape)
    pm = build_parametric_map(
        ProcessingRecord.from_json(record), sources, chi, affine, settings=Settings()
    )
    sr = build_measurement_report(
        ProcessingRecord.from_json(record), sources, pm, settings=Settings(), segmentation=seg
    )
    path = save(sr, tmp_path / "sr.dcm")
    assert validator_errors(path) == []
    dump = dsrdump(path)
    assert dump.returncode == 0 and "Referenced Segment" in dump.stdout, dump.stderr

    tracking = {str(d.SegmentLabel): str(d.TrackingUID) for d in seg.SegmentSequence}
    groups = [
        g
        for g in walk(sr.ContentSequence)
        if g.ValueType == "CONTAINER"
        and "ContentTemplateSequence" in g
        and template_of(g) in {"1411", "1501"}
    ]
    volumetric = {}
    for group in groups:
        items = {i.ConceptNameCodeSequence[0].CodeMeaning: i for i in group.ContentSequence}
        name = str(items["Tracking Identifier"].TextValue)
        if template_of(group) == "1411":
            segment = items["Referenced Segment"].ReferencedSOPSequence[0]
            assert segment.ReferencedSOPInstanceUID == seg.SOPInstanceUID
            volumetric[name] = int(segment.ReferencedSegmentNumber)
            assert str(items["Tracking Unique Identifier"].UID) == tracking[name]
    want = {
        f"{side} {structure.replace('_', ' ')}": number
        for (structure, side), number in SEGMENT_NUMBERS.items()
        if (structure, side) != ("caudate", "left")
    }
    assert volumetric == want
    parsed = hd.sr.srread(path).content  # a third-party reader finds the same structure
    assert len(parsed.get_volumetric_roi_measurement_groups()) == len(want)
    assert len(parsed.get_image_measurement_groups()) == len(STRUCTURES) + 2  # + caudate L, risk
    reported = reported_numbers(sr)
    assert set(reported) == {(s, side) for s in STRUCTURES for side in SIDE_CODES.values()}
    assert reported[("caudate", "left")]["mean_ppb"] == round(
        record_side(record, "caudate", "left")["mean_ppb"], 1
    )


def test_segmentation_and_sr_from_enhanced_mr_sources(tmp_path: Path) -> None:
    """One multi-frame source file holds every slice and echo: derived objects still validate."""
    study = assembled_study(tmp_path / "source", "enhanced")
    record, sources = make_record(study), read_sources(study.reference_paths)
    labels = known_labels(study)
    seg = build_segmentation(
        ProcessingRecord.from_json(record),
        sources,
        labels,
        study.acquisition.affine_ras,
        settings=Settings(),
    )
    sr = build_measurement_report(
        ProcessingRecord.from_json(record), sources, settings=Settings(), segmentation=seg
    )
    for name, ds in (("seg.dcm", seg), ("sr.dcm", sr)):
        assert validator_errors(save(ds, tmp_path / name)) == [], name
    assert dsrdump(tmp_path / "sr.dcm").returncode == 0
