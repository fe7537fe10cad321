"""Deep grey matter labels from a DICOM Segmentation (SEG) object, for external segmentation.

Which segment is which structure (docs/segmentation.md): first its Segmented Property Type
code (SNOMED CT: thalamus 42695009, caudate nucleus 11000004, putamen 89278009, globus
pallidus 14738005, lateral ventricle 66720007) with the side from a SNOMED laterality code
(left 7771000, right 24028007) in the Segmented Property Type Modifier Code Sequence or the
Anatomic Region Modifier Sequence; failing that, the words of its Segment Label (e.g.
FreeSurfer's "Left-Thalamus", "Right-Pallidum", "Left-Lateral-Ventricle"). Segments whose
structure or side cannot be told are ignored; other findings in the same SEG do no harm.

The frames are placed by their plane positions (highdicom builds the regular volume, empty
frames omitted by the writer included) and handed to `monitor.segment.external` as
`ExternalLabels`, which resamples them onto the acquisition grid exactly as it does a NIfTI.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from dicom_node.errors import NodeError
from dicom_node.geometry import LPS_FROM_RAS
from dicom_node.sop_classes import SEGMENTATION_SOP_CLASSES
from monitor.segment.external import ExternalLabels, ExternalLabelsError, read_nifti_labels
from monitor.settings import SegmentationSettings

STRUCTURE_CODES = {
    "42695009": "thalamus",
    "11000004": "caudate",
    "89278009": "putamen",
    "14738005": "globus_pallidus",
    "66720007": "lateral_ventricle",
}
"""SNOMED CT (SCT) body structure codes of the structures we label."""


LATERALITY_CODES = {"7771000": "left", "24028007": "right"}

_LABEL_WORDS: tuple[tuple[frozenset[str], str], ...] = (
    (frozenset({"thalamus"}), "thalamus"),
    (frozenset({"caudate"}), "caudate"),
    (frozenset({"putamen"}), "putamen"),
    (frozenset({"pallidum"}), "globus_pallidus"),
    (frozenset({"pallidus"}), "globus_pallidus"),
    (frozenset({"lateral", "ventricle"}), "lateral_ventricle"),
)
_SIDE_WORDS = {"left": "left", "lh": "left", "l": "left"} | {
    "right": "right",
    "rh": "right",
    "r": "right",
}

FRACTION_INSIDE = 0.5
"""A FRACTIONAL segment includes a voxel from this probability or occupancy on."""


class SegInputError(NodeError, ValueError):
    """A DICOM SEG that cannot serve as the acquisition's segmentation (one plain reason)."""


def load_external_segmentation(
    path: Path, frame_of_reference_uid: str, settings: SegmentationSettings
) -> ExternalLabels:
    """A label NIfTI (``.nii``/``.nii.gz``) or a DICOM SEG on the acquisition's frame."""
    if is_label_nifti(path):
        try:
            return read_nifti_labels(path, settings)
        except ExternalLabelsError as exc:
            raise SegInputError(str(exc)) from exc
    return read_seg_labels(path, frame_of_reference_uid)


def find_segmentation(paths: Iterable[Path], frame_of_reference_uid: str) -> Path | None:
    """The DICOM SEG among a study's files that can serve this acquisition: on its frame of
    reference, with at least one segment we recognise; the newest by content date and time
    when several do (a re-run of the external tool supersedes the earlier one). Headers only:
    the pixels are read when the job runs."""
    candidates = []
    for path in paths:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except (OSError, InvalidDicomError):
            continue
        if (
            ds.get("SOPClassUID") in SEGMENTATION_SOP_CLASSES
            and ds.get("FrameOfReferenceUID") == frame_of_reference_uid
            and match_segments(ds.get("SegmentSequence", []))
        ):
            candidates.append((f"{ds.get('ContentDate', '')}{ds.get('ContentTime', '')}", path))
    return max(candidates, key=lambda item: item[0])[1] if candidates else None


def split_segmentation(paths: Iterable[Path]) -> tuple[list[Path], Path | None]:
    """An acquisition's recorded inputs as (image files, external segmentation or None): the
    history and the job queue keep the segmentation among the inputs, so a retry or a
    re-processing run measures on the same regions."""
    images, segmentation = [], None
    for path in paths:
        if is_label_nifti(path) or is_segmentation(path):
            segmentation = path
        else:
            images.append(path)
    return images, segmentation


def is_label_nifti(path: Path) -> bool:
    """An external segmentation given as NIfTI labels, told by its name as every NIfTI tool
    does (the one place that decides it, for the CLI's check and for assembly alike)."""
    return path.name.endswith((".nii", ".nii.gz"))


def is_segmentation(path: Path) -> bool:
    """A DICOM SEG file, told from its SOP Class UID alone (a cheap header read)."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
    except (OSError, InvalidDicomError):
        return False
    return ds.get("SOPClassUID") in SEGMENTATION_SOP_CLASSES


def read_seg_labels(path: Path, frame_of_reference_uid: str) -> ExternalLabels:
    """Segment numbers of the matched segments on the SEG's own grid, in RAS+."""
    try:
        seg = hd.seg.segread(path)
    except Exception as exc:  # pydicom/highdicom raise many types for a file that is no SEG
        raise SegInputError(f"not a readable DICOM SEG: {path.name}: {exc}") from exc
    if seg.SOPClassUID not in SEGMENTATION_SOP_CLASSES:
        raise SegInputError(f"{path.name} is not a DICOM Segmentation object")
    if seg.FrameOfReferenceUID != frame_of_reference_uid:
        raise SegInputError(
            "DICOM SEG is on another frame of reference than the acquisition; "
            "it must be derived from images of the same scan session"
        )
    label_map = match_segments(seg.SegmentSequence)
    if not label_map:
        raise SegInputError("DICOM SEG has no segment for thalamus, caudate, putamen or pallidum")
    numbers = sorted(n for values in label_map.values() for n in values)
    try:
        volume = seg.get_volume(segment_numbers=numbers, combine_segments=False)
    except (ValueError, RuntimeError) as exc:
        raise SegInputError(f"DICOM SEG frames do not form a regular volume: {exc}") from exc
    inside = np.asarray(volume.array) >= FRACTION_INSIDE
    overlap = np.count_nonzero(inside.sum(axis=-1) > 1)
    if overlap:
        raise SegInputError(f"DICOM SEG deep grey matter segments overlap in {overlap} voxels")
    values = np.where(inside.any(axis=-1), np.asarray(numbers)[inside.argmax(axis=-1)], 0)
    return ExternalLabels(values.astype(np.int32), LPS_FROM_RAS @ volume.affine, label_map)


def match_segments(segments: Iterable[Dataset]) -> dict[str, list[int]]:
    """Our structure name (``thalamus_left`` ...) -> the segment numbers that show it."""
    label_map: dict[str, list[int]] = {}
    for segment in segments:
        name = _name_from_codes(segment) or _name_from_label(str(segment.get("SegmentLabel", "")))
        if name:
            label_map.setdefault(name, []).append(int(segment.SegmentNumber))
    return label_map


def _name_from_codes(segment: Dataset) -> str | None:
    types = [item for item in segment.get("SegmentedPropertyTypeCodeSequence", []) if _sct(item)]
    structure = next((STRUCTURE_CODES.get(str(t.CodeValue)) for t in types), None)
    if structure is None:
        return None
    modifiers = [
        *(m for t in types for m in t.get("SegmentedPropertyTypeModifierCodeSequence", [])),
        *segment.get("SegmentedPropertyTypeModifierCodeSequence", []),
        *(
            m
            for region in segment.get("AnatomicRegionSequence", [])
            for m in region.get("AnatomicRegionModifierSequence", [])
        ),
    ]
    sides = {LATERALITY_CODES.get(str(m.CodeValue)) for m in modifiers if _sct(m)} - {None}
    label = str(segment.get("SegmentLabel", ""))
    side = sides.pop() if len(sides) == 1 else _side_from_label(label)
    return f"{structure}_{side}" if side else None


def _name_from_label(label: str) -> str | None:
    words = set(re.findall(r"[a-z]+", label.lower()))
    structure = next((name for needed, name in _LABEL_WORDS if needed <= words), None)
    side = _side_from_label(label)
    return f"{structure}_{side}" if structure and side else None


def _side_from_label(label: str) -> str | None:
    sides = {_SIDE_WORDS[w] for w in re.findall(r"[a-z]+", label.lower()) if w in _SIDE_WORDS}
    return sides.pop() if len(sides) == 1 else None


def _sct(code: Dataset) -> bool:
    return str(code.get("CodingSchemeDesignator", "")) in {"SCT", "SRT"}
