"""Assemble: the files of one study in, multi-echo GRE acquisitions (and a SEG) out.

In: paths of received (or given) DICOM files. Out: `AssembledAcquisition`s holding a
`monitor.types.Acquisition` (magnitude and phase in radians, echo times, geometry, B0) per
acquisition found, with a plain reason for each candidate rejected; vendor phase conventions
(Siemens, GE real/imaginary, Philips) are resolved here; a DICOM SEG sent with the study is
read into labels on its frame of reference. Owns no tables.
"""

from dicom_node.assemble.seg_input import (
    SegInputError,
    find_segmentation,
    is_label_nifti,
    is_segmentation,
    load_external_segmentation,
    match_segments,
    read_seg_labels,
    split_segmentation,
)
from dicom_node.assemble.study import (
    AssembledAcquisition,
    AssemblyReport,
    Discovery,
    PlannedAcquisition,
    assemble_study,
    discover_study,
)
from dicom_node.assemble.vendor_phase import PhaseScalingError, StoredRange, phase_to_radians

__all__ = [
    "AssembledAcquisition",
    "AssemblyReport",
    "Discovery",
    "PhaseScalingError",
    "PlannedAcquisition",
    "SegInputError",
    "StoredRange",
    "assemble_study",
    "discover_study",
    "find_segmentation",
    "is_label_nifti",
    "is_segmentation",
    "load_external_segmentation",
    "match_segments",
    "phase_to_radians",
    "read_seg_labels",
    "split_segmentation",
]
