"""Synthetic DICOM SEGs of known deep grey matter blocks, derived with highdicom from
synthetic source images: what FastSurfer-to-DICOM tools would send with a study."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from highdicom.sr import CodedConcept

from monitor.segment.structures import LABEL_IDS

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


def truth_labels() -> np.ndarray:
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


def write_seg(
    sources: list[pydicom.Dataset], kind: str, path: Path, truth: np.ndarray | None = None
) -> Path:
    """A SEG of `truth` (our label ids on the sources' grid, x = column, y = row, z = slice;
    default: the blocks); BINARY and FRACTIONAL also carry a brain segment that overlaps
    everything and must be ignored (a LABELMAP cannot hold overlaps)."""
    truth_xyz = truth_labels() if truth is None else truth
    names = [name for name in BLOCKS if (truth_xyz == LABEL_IDS[name]).any()]
    truth = truth_xyz.transpose(2, 1, 0)  # frames, rows, columns
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
