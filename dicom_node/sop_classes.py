"""The storage SOP classes the node keeps; everything else a PACS routes is acknowledged and
dropped. A module of its own so the listener knows them without loading highdicom."""

from __future__ import annotations

from pydicom.uid import (
    UID,
    EnhancedMRImageStorage,
    LegacyConvertedEnhancedMRImageStorage,
    MRImageStorage,
    SegmentationStorage,
)

MR_IMAGE_SOP_CLASSES = frozenset(
    {MRImageStorage, EnhancedMRImageStorage, LegacyConvertedEnhancedMRImageStorage}
)
"""What series assembly can use (single- and multi-frame MR)."""

SEGMENTATION_SOP_CLASSES = frozenset({SegmentationStorage, UID("1.2.840.10008.5.1.4.1.1.66.7")})
"""Segmentation Storage and Label Map Segmentation Storage (pydicom 3.0 has no name for it):
an external deep grey matter segmentation sent with the study (docs/segmentation.md)."""

KEPT_SOP_CLASSES = MR_IMAGE_SOP_CLASSES | SEGMENTATION_SOP_CLASSES
