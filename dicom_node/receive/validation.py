"""Is a received MR object usable? Checked before it is spooled and acknowledged.

pydicom decodes leniently: a truncated native Pixel Data value is read short without error and
a truncated encapsulated one is dropped with a warning. Acknowledging such an object would tell
the scanner a broken image is safe, so both are caught here and refused. So is an object that
is not what its C-STORE command says (another SOP class or instance), one without its own SOP
Instance UID, and native pixel data far longer than its rows, columns and bits describe (50 MB
behind a 4x4 image would otherwise fill the spool).
"""

from __future__ import annotations

from pydicom import Dataset
from pydicom.pixels.utils import get_expected_length
from pydicom.uid import UID

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def decode_every_element(ds: Dataset) -> None:
    """Decode the whole data set now, raising on the first element pydicom cannot read.

    pydicom parses lazily, so a corrupted element (an unknown VR after a bit flip) would only
    fail later, in assembly, after the sender heard "stored"; walking every element, nested
    sequences included, costs well under a millisecond for an MR header.
    """
    for element in ds.iterall():
        _ = element.value


_PAD_BYTES = 1
"""Native pixel data is padded to an even length: one byte more than expected is normal."""


def unusable_reason(
    ds: Dataset, sop_uid: str, transfer_syntax: UID, sop_class: str | None = None
) -> str | None:
    """A short reason code if the object cannot be an intact image, else None.

    `sop_uid` and `sop_class` are the SOP Instance and Class UIDs from the C-STORE command
    (the UID names the spool file); `transfer_syntax` is the one negotiated for the
    presentation context.
    """
    if "SOPInstanceUID" not in ds:
        return "no_sop_uid"
    if str(ds.SOPInstanceUID).strip() != sop_uid:
        return "sop_uid_mismatch"
    if sop_class is not None and str(ds.get("SOPClassUID", "")).strip() != sop_class:
        return "sop_class_mismatch"
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
    if len(ds[keyword].value) > expected + _PAD_BYTES:
        return "oversized_pixel_data"
    return None
