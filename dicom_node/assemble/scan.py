"""Read DICOM headers into one flat record per image frame (single-frame or Enhanced MR).

Assembly first decides *what* belongs together from headers alone (cheap: no pixel data), then
loads pixels only for the frames it keeps. Classic single-frame images and the frames of an
Enhanced MR object become the same `FrameRecord`, so grouping and volume building have one code
path for every vendor layout.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import EnhancedMRImageStorage, MRImageStorage

from dicom_node.assemble.vendor_phase import StoredRange
from dicom_node.logs import uid_hash
from dicom_node.sop_classes import SEGMENTATION_SOP_CLASSES
from monitor.types import GYROMAGNETIC_HZ_PER_T

ImageKind = Literal["magnitude", "phase", "real", "imaginary"]
_KINDS: frozenset[str] = frozenset(get_args(ImageKind))

_GE_IMAGE_KIND_TAG = (0x0043, 0x102F)
"""GE private "image type": 0 magnitude, 1 phase, 2 real, 3 imaginary."""
_GE_KINDS: dict[int, ImageKind] = {0: "magnitude", 1: "phase", 2: "real", 3: "imaginary"}
_TYPE_TOKENS: tuple[tuple[frozenset[str], ImageKind], ...] = (
    (frozenset({"P", "PHASE", "PHASE MAP"}), "phase"),
    (frozenset({"R", "REAL"}), "real"),
    (frozenset({"I", "IMAGINARY"}), "imaginary"),
    (frozenset({"M", "MAGNITUDE"}), "magnitude"),
)


@dataclass(frozen=True)
class StudySource:
    """Identity attributes kept for longitudinal tracking; never written to logs."""

    study_uid: str
    patient_id: str
    patient_birth_date: str
    patient_sex: str
    study_date: str
    study_time: str = ""
    issuer_of_patient_id: str = ""
    """Patient IDs are unique only within their issuer (monitor.tracking.identity)."""


@dataclass(frozen=True)
class FrameRecord:
    """Everything assembly needs to know about one 2-D frame before reading its pixels."""

    path: Path
    frame_index: int | None
    """None for a single-frame file; the 0-based frame number inside an Enhanced MR object."""
    sop_uid: str
    series_uid: str
    series_number: int
    series_description: str
    frame_of_reference_uid: str
    manufacturer: str
    kind: ImageKind
    derived: bool
    gradient_echo: bool
    te_ms: float | None
    position_lps: np.ndarray | None
    orientation: np.ndarray | None
    pixel_spacing_mm: np.ndarray | None
    rows: int
    columns: int
    stored: StoredRange
    patient_position: str
    b0_tesla: float | None
    source: StudySource
    manufacturer_model: str = ""
    inversion_recovery: bool = False
    """An inversion-prepared sequence (MPRAGE, IR-SPGR): a T1-weighted structural image."""


@dataclass(frozen=True)
class UnreadableFile:
    """A file that is not readable DICOM, and the kind of fault (no exception text)."""

    path: Path
    fault: str

    @property
    def reason(self) -> str:
        """For records and logs: the file named by a hash (spool file names are SOP Instance
        UIDs, and a user's file names may hold a patient's name)."""
        return f"unreadable file {uid_hash(self.path.name)} ({self.fault})"


@dataclass(frozen=True)
class ScanResult:
    records: list[FrameRecord]
    unreadable: list[UnreadableFile]
    not_mr_series: dict[str, str]
    """Series UID -> SOP Class UID of series that are not MR images."""
    segmentations: list[Path] = field(default_factory=list)
    """Files that are DICOM SEG objects, seen in the same header read (no second read)."""


def scan_headers(paths: Iterable[Path]) -> ScanResult:
    """Read every header once; unreadable files and non-MR objects are set aside, not raised."""
    records: list[FrameRecord] = []
    unreadable: list[UnreadableFile] = []
    not_mr: dict[str, str] = {}
    segmentations: list[Path] = []
    for path in paths:
        path = Path(path)
        try:
            ds = dcmread(path, stop_before_pixels=True)
            sop_class = str(ds.SOPClassUID)
            if sop_class == MRImageStorage:
                records.append(_classic_record(path, ds))
            elif sop_class == EnhancedMRImageStorage:
                records.extend(_enhanced_records(path, ds))
            else:
                not_mr[str(ds.get("SeriesInstanceUID", ""))] = sop_class
                if sop_class in SEGMENTATION_SOP_CLASSES:
                    segmentations.append(path)
        except Exception as error:  # noqa: BLE001 - any header fault costs that file only
            # Malformed values (a text SeriesNumber, a missing SOP Instance UID), truncated
            # files, and pydicom's NotImplementedError for an unknown VR: one corrupted
            # instance must become a rejection, never an exception that stalls its study.
            unreadable.append(UnreadableFile(path, _fault(error)))
    return ScanResult(records, unreadable, not_mr, segmentations)


def _fault(error: Exception) -> str:
    """The kind of fault, without the exception text (which may quote UIDs or values)."""
    if isinstance(error, InvalidDicomError):
        return "not DICOM"
    if isinstance(error, OSError | EOFError):
        return "cannot be read"
    return f"malformed header: {type(error).__name__}"


def _classic_record(path: Path, ds: Dataset) -> FrameRecord:
    scanning = {str(v).upper() for v in _values(ds.get("ScanningSequence"))}
    return FrameRecord(
        path=path,
        frame_index=None,
        kind=_classic_kind(ds),
        derived=_is_derived(ds.get("ImageType")),
        gradient_echo="GR" in scanning,
        inversion_recovery="IR" in scanning or ds.get("InversionTime") is not None,
        te_ms=_float(ds.get("EchoTime")),
        position_lps=_array(ds.get("ImagePositionPatient"), 3),
        orientation=_array(ds.get("ImageOrientationPatient"), 6),
        pixel_spacing_mm=_array(ds.get("PixelSpacing"), 2),
        stored=_stored_range(ds, ds),
        **_common(path, ds),
    )


def _enhanced_records(path: Path, ds: Dataset) -> list[FrameRecord]:
    """One record per frame; each functional group is looked up per-frame, then shared."""
    shared = _first(ds.get("SharedFunctionalGroupsSequence"))
    echo_sequence = str(ds.get("EchoPulseSequence", "")).upper()
    common = _common(path, ds)
    records = []
    for index, group in enumerate(ds.get("PerFrameFunctionalGroupsSequence", [])):

        def item(keyword: str, group: Dataset = group) -> Dataset:
            found = _first(group.get(keyword)) or _first(shared.get(keyword) if shared else None)
            return found if found is not None else Dataset()

        frame_type = item("MRImageFrameTypeSequence")
        component = str(frame_type.get("ComplexImageComponent", "MAGNITUDE")).lower()
        records.append(
            FrameRecord(
                path=path,
                frame_index=index,
                kind=component if component in _KINDS else "magnitude",  # type: ignore[arg-type]
                derived=_is_derived(frame_type.get("FrameType")),
                gradient_echo=echo_sequence in {"GRADIENT", "BOTH"},
                inversion_recovery=str(
                    item("MRModifierSequence").get("InversionRecovery", "")
                ).upper()
                == "YES",
                te_ms=_float(item("MREchoSequence").get("EffectiveEchoTime")),
                position_lps=_array(item("PlanePositionSequence").get("ImagePositionPatient"), 3),
                orientation=_array(
                    item("PlaneOrientationSequence").get("ImageOrientationPatient"), 6
                ),
                pixel_spacing_mm=_array(item("PixelMeasuresSequence").get("PixelSpacing"), 2),
                stored=_stored_range(ds, item("PixelValueTransformationSequence")),
                **common,
            )
        )
    return records


def _common(path: Path, ds: Dataset) -> dict:
    """Attributes identical for every frame of a file."""
    return {
        "sop_uid": str(ds.SOPInstanceUID),
        "series_uid": str(ds.get("SeriesInstanceUID", "")),
        "series_number": int(ds.get("SeriesNumber") or 0),
        "series_description": str(ds.get("SeriesDescription", "")),
        "frame_of_reference_uid": str(ds.get("FrameOfReferenceUID", "")),
        "manufacturer": str(ds.get("Manufacturer", "")),
        "manufacturer_model": str(ds.get("ManufacturerModelName", "")),
        "rows": int(ds.get("Rows") or 0),
        "columns": int(ds.get("Columns") or 0),
        "patient_position": str(ds.get("PatientPosition", "")).upper(),
        "b0_tesla": _field_strength_tesla(ds),
        "source": StudySource(
            study_uid=str(ds.get("StudyInstanceUID", "")),
            patient_id=str(ds.get("PatientID", "")),
            patient_birth_date=str(ds.get("PatientBirthDate", "")),
            patient_sex=str(ds.get("PatientSex", "")),
            study_date=str(ds.get("StudyDate", "")),
            study_time=str(ds.get("StudyTime", "")),
            issuer_of_patient_id=str(ds.get("IssuerOfPatientID", "")),
        ),
    }


def _classic_kind(ds: Dataset) -> ImageKind:
    """ComplexImageComponent, then ImageType tokens, then GE's private tag; else magnitude."""
    component = str(ds.get("ComplexImageComponent", "")).lower()
    if component in _KINDS:
        return component  # type: ignore[return-value]
    tokens = {str(v).upper() for v in _values(ds.get("ImageType"))[2:]}
    for names, kind in _TYPE_TOKENS:
        if tokens & names:
            return kind
    return _GE_KINDS.get(_ge_kind_code(ds), "magnitude")


def _ge_kind_code(ds: Dataset) -> int | None:
    """GE's private image kind; raw bytes (SS, little endian) when no private dictionary applied."""
    element = ds.get(_GE_IMAGE_KIND_TAG)
    value = None if element is None else element.value
    if isinstance(value, bytes):
        return int.from_bytes(value[:2], "little", signed=True) if len(value) >= 2 else None
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _stored_range(ds: Dataset, rescale: Dataset) -> StoredRange:
    return StoredRange(
        bits_stored=int(ds.get("BitsStored") or 16),
        signed=int(ds.get("PixelRepresentation") or 0) == 1,
        slope=_float(rescale.get("RescaleSlope")) or 1.0,
        intercept=_float(rescale.get("RescaleIntercept")) or 0.0,
    )


def _field_strength_tesla(ds: Dataset) -> float | None:
    """MagneticFieldStrength (old GE files give gauss), else from the imaging frequency."""
    strength = _float(ds.get("MagneticFieldStrength"))
    if strength is not None and strength > 0:
        return strength / 10000.0 if strength > 100 else strength
    frequency_mhz = _float(ds.get("ImagingFrequency"))
    if frequency_mhz:
        return frequency_mhz * 1e6 / GYROMAGNETIC_HZ_PER_T
    return None


def _is_derived(image_type: object) -> bool:
    values = _values(image_type)
    return bool(values) and str(values[0]).upper() == "DERIVED"


def _values(value: object) -> list:
    if value is None or value == "":
        return []
    if isinstance(value, str | bytes):
        return [value]
    try:
        return list(value)  # type: ignore[call-overload]
    except TypeError:
        return [value]


def _first(sequence: object) -> Dataset | None:
    items = _values(sequence)
    return items[0] if items else None


def _float(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _array(value: object, length: int) -> np.ndarray | None:
    values = _values(value)
    if len(values) != length:
        return None
    try:
        return np.array([float(v) for v in values])
    except (TypeError, ValueError):
        return None
