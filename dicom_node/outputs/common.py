"""What every DICOM object qsm-monitor creates shares: its maker, its UIDs, its series number.

UIDs are derived from the acquisition's idempotency key, the producing version and the object's
kind, so re-emitting a result gives the same SOP Instance UIDs (a PACS stores a resend once),
while a new software version makes new objects instead of silently replacing reported ones.
An amendment (the record re-assessed after it was sent) is a new object too: its number joins
the derivation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from monitor import __version__
from monitor.record import ProcessingRecord
from monitor.settings import Settings

OutputKind = Literal[
    "sr",
    "parametric_map",
    "mr_derived",
    "key_image_segmentation",
    "trend_plot",
    "segmentation",
    "report_page",
    "report_pdf",
]
_SERIES_OFFSET: dict[OutputKind, int] = {
    "sr": 0,
    "parametric_map": 1,
    "mr_derived": 2,
    "key_image_segmentation": 3,
    "trend_plot": 4,
    "segmentation": 5,
    "report_page": 6,
    "report_pdf": 7,
}
MANUFACTURER = "qsm-monitor"
MODEL_NAME = "qsm-monitor"
BODY_PART = "HEAD"
"""Unpaired, so General Series Laterality (type 2C) is rightly absent from our images."""


def producing_version(record: ProcessingRecord) -> str:
    """The version that computed the record's numbers (not necessarily the one emitting them)."""
    return record.pipeline_version or __version__


def stable_uid(*parts: str) -> str:
    """A UID hashed from `parts` (one way, so identifiers inside cannot be read back)."""
    return str(generate_uid(entropy_srcs=["qsm-monitor", *parts]))


def tracking_uid(record: ProcessingRecord, structure: str, side: str) -> str:
    """The same per patient, structure and side in every study (SEG segment and SR group share
    it), so a viewer can follow a region across visits; the patient ID is hashed one way."""
    return stable_uid("tracking", str(record.patient_id), structure, side)


def derived_uid(record: ProcessingRecord, *parts: str) -> str:
    """A UID that is the same whenever the same version re-emits the same acquisition's object."""
    if not record.idempotency_key:
        raise ValueError("record has no idempotency_key: its DICOM objects cannot be named")
    revision = (f"amendment-{record.amendment}",) if record.amendment else ()
    return stable_uid(record.idempotency_key, producing_version(record), *revision, *parts)


def series_number(settings: Settings, kind: OutputKind) -> int:
    return settings.outputs.series_number_base + _SERIES_OFFSET[kind]


def equipment(record: ProcessingRecord, settings: Settings) -> dict[str, str]:
    """General Equipment keywords highdicom's constructors take; the node's AE title tells
    sites with several nodes which one made an object."""
    return {
        "manufacturer": MANUFACTURER,
        "manufacturer_model_name": MODEL_NAME,
        "software_versions": producing_version(record),
        "device_serial_number": settings.node.ae_title,
    }


def read_sources(paths: Iterable[Path | str]) -> list[Dataset]:
    """Source headers in the given order; pixels are never needed, only identity and geometry."""
    return [dcmread(path, stop_before_pixels=True) for path in paths]


def check_sources(record: ProcessingRecord, sources: Sequence[Dataset]) -> None:
    """Derived objects join the source study; a mix-up of studies must fail, never be filed."""
    if not sources:
        raise ValueError("no source images: derived objects need the acquisition's images")
    studies = {str(ds.StudyInstanceUID) for ds in sources}
    if studies != {record.study_uid}:
        raise ValueError("source images do not belong to the record's study")
