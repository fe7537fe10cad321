"""Deep grey matter segmentation: atlas registration or an external label map, plus QC."""

from monitor.segment.pipeline import segment_deep_grey
from monitor.segment.result import Segmentation
from monitor.segment.structures import LABEL_IDS, LABEL_NAMES, STRUCTURES
from monitor.segment.t1_input import T1Image

__all__ = [
    "LABEL_IDS",
    "LABEL_NAMES",
    "STRUCTURES",
    "Segmentation",
    "T1Image",
    "segment_deep_grey",
]
