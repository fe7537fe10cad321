"""Deep grey matter segmentation: atlas registration or an external label map, plus QC."""

from monitor.segment.pipeline import segment_deep_grey
from monitor.segment.result import Segmentation
from monitor.segment.structures import LABEL_IDS, LABEL_NAMES, STRUCTURES

__all__ = ["LABEL_IDS", "LABEL_NAMES", "STRUCTURES", "Segmentation", "segment_deep_grey"]
