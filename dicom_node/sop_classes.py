"""The storage SOP classes the node keeps (everything else a PACS routes is acknowledged and
dropped), and a new instance of one. A module of its own so the listener knows them without
loading highdicom, and the outputs and the synthetic series start datasets the same way."""

from __future__ import annotations

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    EnhancedMRImageStorage,
    ExplicitVRLittleEndian,
    LegacyConvertedEnhancedMRImageStorage,
    MRImageStorage,
    SegmentationStorage,
    generate_uid,
)

__all__ = [
    "KEPT_SOP_CLASSES",
    "MR_IMAGE_SOP_CLASSES",
    "SEGMENTATION_SOP_CLASSES",
    "new_dataset",
]

MR_IMAGE_SOP_CLASSES = frozenset(
    {MRImageStorage, EnhancedMRImageStorage, LegacyConvertedEnhancedMRImageStorage}
)
"""What series assembly can use (single- and multi-frame MR)."""

SEGMENTATION_SOP_CLASSES = frozenset({SegmentationStorage, UID("1.2.840.10008.5.1.4.1.1.66.7")})
"""Segmentation Storage and Label Map Segmentation Storage (pydicom 3.0 has no name for it):
an external deep grey matter segmentation sent with the study (docs/segmentation.md)."""

KEPT_SOP_CLASSES = MR_IMAGE_SOP_CLASSES | SEGMENTATION_SOP_CLASSES


def new_dataset(sop_class_uid: UID, transfer_syntax: UID = ExplicitVRLittleEndian) -> Dataset:
    """Empty dataset with file meta information and a fresh SOP Instance UID."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class_uid
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.SpecificCharacterSet = "ISO_IR 100"
    return ds
