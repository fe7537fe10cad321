"""Is a received MR object usable? Checked before it is spooled and acknowledged.

pydicom decodes leniently: a truncated native Pixel Data value is read short without error and
a truncated encapsulated one is dropped with a warning. Acknowledging such an object would tell
the scanner a broken image is safe, so both are caught here and refused.
"""

from __future__ import annotations

from pydicom import Dataset
from pydicom.pixels.utils import get_expected_length
from pydicom.uid import UID

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def unusable_reason(ds: Dataset, sop_uid: str, transfer_syntax: UID) -> str | None:
    """A short reason code if the object cannot be an intact image, else None.

    `sop_uid` is the SOP Instance UID from the C-STORE command, which names the spool file;
    `transfer_syntax` is the one negotiated for the presentation context.
    """
    if str(ds.get("SOPInstanceUID", sop_uid)).strip() != sop_uid:
        return "sop_uid_mismatch"
    if not ds.get("StudyInstanceUID") or not ds.get("SeriesInstanceUID"):
        return "no_study_or_series_uid"
    keyword = next((k for k in _PIXEL_KEYWORDS if k in ds), None)
    if keyword is None:
        return "no_pixel_data"
    if transfer_syntax.is_compressed:
        return None  # fragments were parsed up to the sequence delimiter, else dropped
    try:
        expected = get_expected_length(ds, unit="bytes")
    except (AttributeError, KeyError, TypeError, ValueError):
        return "incomplete_pixel_description"
    if len(ds[keyword].value) < expected:
        return "truncated_pixel_data"
    return None
