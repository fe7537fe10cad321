"""The deep grey matter labels as a DICOM Segmentation on the source grid.

It gives the SR's measurement groups their region (TID 1411 needs the ROI itself, not just a
name) and lets a PACS viewer overlay the nuclei on the source images. One binary segment per
reported structure and side, numbered as `monitor.segment.structures` numbers the labels, with
SNOMED CT property type and laterality; CSF reference labels are not reported, so not exported.
"""

from __future__ import annotations

from collections.abc import Sequence
from copy import deepcopy

import numpy as np
from highdicom import AlgorithmIdentificationSequence
from highdicom.seg import SegmentAlgorithmTypeValues, Segmentation, SegmentDescription
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from dicom_node.outputs import concepts as c
from dicom_node.outputs.common import (
    MODEL_NAME,
    derived_uid,
    equipment,
    producing_version,
    series_number,
    tracking_uid,
)
from dicom_node.outputs.grid import checked_geometry, dicom_frames, plane_arguments
from monitor.record import ProcessingRecord
from monitor.segment.structures import LABEL_NAMES, SIDES, STRUCTURES
from monitor.settings import Settings

SEGMENT_NUMBERS: dict[tuple[str, str], int] = {
    (structure, side): label
    for label, name in LABEL_NAMES.items()
    for structure in STRUCTURES
    for side in SIDES
    if name == f"{structure}_{side}"
}
"""(structure, side) -> segment number; equal to our label id, so 1..8 without gaps."""


def build_segmentation(
    record: ProcessingRecord,
    sources: Sequence[Dataset],
    labels: np.ndarray,
    affine_ras: np.ndarray,
    *,
    settings: Settings,
) -> Dataset:
    """A binary SEG of the reported structures; `labels` uses `LABEL_NAMES` ids on our grid."""
    geometry = checked_geometry(record, sources, labels, affine_ras)
    values = np.asarray(labels)
    if not np.issubdtype(values.dtype, np.integer):
        raise ValueError("labels must be an integer label map")
    reported = np.where(np.isin(values, list(SEGMENT_NUMBERS.values())), values, 0)
    if not reported.any():
        raise ValueError("no reported structure is labelled: nothing to segment")
    frames = dicom_frames(reported).astype(np.uint8)
    method = record.qc.segmentation_method
    algorithm = AlgorithmIdentificationSequence(
        name=f"{MODEL_NAME} {method} segmentation",
        family=codes.cid7162.DeformableModels,
        version=producing_version(record),
    )
    seg = Segmentation(
        source_images=list(sources),
        pixel_array=frames,
        segmentation_type="BINARY",
        segment_descriptions=[
            _description(record, structure, side, number, algorithm)
            for (structure, side), number in sorted(SEGMENT_NUMBERS.items(), key=lambda i: i[1])
        ],
        series_instance_uid=derived_uid(record, "segmentation", "series"),
        series_number=series_number(settings, "segmentation"),
        sop_instance_uid=derived_uid(record, "segmentation", "instance"),
        instance_number=1,
        **equipment(record, settings),
        content_label="DGM",
        content_description="Deep grey matter nuclei (qsm-monitor)",
        **plane_arguments(geometry, frames.shape[0]),
    )
    seg.SeriesDescription = "QSM deep grey matter segmentation"
    return seg


def _description(
    record: ProcessingRecord,
    structure: str,
    side: str,
    number: int,
    algorithm: AlgorithmIdentificationSequence,
) -> SegmentDescription:
    description = SegmentDescription(
        segment_number=number,
        segment_label=f"{side} {structure.replace('_', ' ')}",
        segmented_property_category=codes.SCT.AnatomicalStructure,
        # A copy: the laterality modifier below must not leak into the shared constant.
        segmented_property_type=deepcopy(c.FINDING_SITES[structure]),
        algorithm_type=SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
        tracking_uid=tracking_uid(record, structure, side),
        tracking_id=f"{side} {structure.replace('_', ' ')}",
    )
    description.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [
        c.LATERALITY[side]
    ]
    return description
