"""Which received objects are refused before spooling, and why."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydicom import Dataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, JPEGLSLossless, generate_uid
from support.node_helpers import mr_dataset

from dicom_node.receive.validation import unusable_reason


def intact() -> Dataset:
    return mr_dataset(generate_uid(), generate_uid(), size=8)


def test_intact_image_is_usable() -> None:
    ds = intact()
    assert unusable_reason(ds, ds.SOPInstanceUID, ExplicitVRLittleEndian) is None


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda ds: setattr(ds, "PixelData", ds.PixelData[:-2]), "truncated_pixel_data"),
        (lambda ds: delattr(ds, "PixelData"), "no_pixel_data"),
        (lambda ds: delattr(ds, "Rows"), "incomplete_pixel_description"),
        (lambda ds: delattr(ds, "SeriesInstanceUID"), "no_study_or_series_uid"),
        (lambda ds: setattr(ds, "SOPInstanceUID", generate_uid()), "sop_uid_mismatch"),
        (lambda ds: delattr(ds, "SOPInstanceUID"), "no_sop_uid"),
        (lambda ds: setattr(ds, "SOPClassUID", CTImageStorage), "sop_class_mismatch"),
        (lambda ds: setattr(ds, "PixelData", ds.PixelData * 1000), "oversized_pixel_data"),
    ],
    ids=[
        "truncated", "no-pixels", "no-rows", "no-series", "uid-mismatch", "no-uid",
        "class-mismatch", "oversized",
    ],
)  # fmt: skip
def test_damaged_object_has_a_reason(damage: Callable[[Dataset], None], reason: str) -> None:
    ds = intact()
    sop_uid = ds.SOPInstanceUID
    sop_class = str(ds.SOPClassUID)
    damage(ds)
    assert unusable_reason(ds, sop_uid, ExplicitVRLittleEndian, sop_class) == reason


def test_one_byte_of_padding_is_not_oversized() -> None:
    """Odd-length native pixel data is padded to even: one trailing byte is normal."""
    ds = intact()
    ds.PixelData = ds.PixelData + b"\x00"
    assert unusable_reason(ds, ds.SOPInstanceUID, ExplicitVRLittleEndian) is None


def test_compressed_pixel_data_length_is_not_compared_to_native_size() -> None:
    ds = intact()
    ds.compress(JPEGLSLossless)
    assert unusable_reason(ds, ds.SOPInstanceUID, JPEGLSLossless) is None
