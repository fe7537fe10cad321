"""The susceptibility map as DICOM on the source grid: a Parametric Map and/or an MR series.

The Parametric Map keeps exact float values in ppb (real-world value mapping, slope 1); the MR
derived series stores integers with a power-of-ten rescale slope to ppb, for viewers that cannot
show parametric maps. Both lie on the source frame of reference with the acquisition's geometry.

Axes and geometry checks: `dicom_node.outputs.grid`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
from highdicom import VOILUTTransformation
from highdicom.pm import ParametricMap, RealWorldValueMapping
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage

from dicom_node.geometry import SliceGeometry
from dicom_node.outputs import concepts as c
from dicom_node.outputs.common import BODY_PART, derived_uid, equipment, series_number
from dicom_node.outputs.grid import checked_geometry, dicom_frames, plane_arguments
from dicom_node.sop_classes import new_dataset
from monitor.record import ProcessingRecord
from monitor.settings import Settings
from monitor.types import QSMResult

OUTPUT_NAMES = {"parametric_map": "qsm_parametric_map", "mr_derived": "qsm_mr_series"}
"""Setting value -> the record's `outputs` name of that series."""
_INT16_MAX = 32767
_COPIED_FROM_SOURCE = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyDescription",
    "FrameOfReferenceUID",
    "PositionReferenceIndicator",
    "PatientPosition",
    "MagneticFieldStrength",
)


def build_qsm_maps(
    record: ProcessingRecord, sources: Sequence[Dataset], qsm: QSMResult, *, settings: Settings
) -> dict[str, list[Dataset]]:
    """The map series chosen in ``settings.outputs.qsm_maps``, keyed by their output name."""
    builders = {"parametric_map": build_parametric_map, "mr_derived": build_mr_derived_series}
    return {
        OUTPUT_NAMES[kind]: builders[kind](
            record, sources, qsm.chi_ppm, qsm.affine_ras, settings=settings
        )
        for kind in settings.outputs.qsm_maps
    }


def build_parametric_map(
    record: ProcessingRecord,
    sources: Sequence[Dataset],
    chi_ppm: np.ndarray,
    affine_ras: np.ndarray,
    *,
    settings: Settings,
) -> list[Dataset]:
    """One multi-frame Parametric Map instance (float32 ppb), frames in slice order."""
    geometry = checked_geometry(record, sources, chi_ppm, affine_ras)
    frames = _frames_ppb(chi_ppm).astype(np.float32)
    low, high = settings.outputs.display_window_ppb
    mapping = RealWorldValueMapping(
        lut_label="chi_ppb",
        lut_explanation="Magnetic susceptibility",
        unit=c.PPB,
        value_range=(float(frames.min()), float(frames.max())),
        slope=1.0,
        intercept=0.0,
        quantity_definition=c.MAGNETIC_SUSCEPTIBILITY,
    )
    pm = ParametricMap(
        source_images=list(sources),
        pixel_array=frames,
        series_instance_uid=derived_uid(record, "parametric_map", "series"),
        series_number=series_number(settings, "parametric_map"),
        sop_instance_uid=derived_uid(record, "parametric_map", "instance"),
        instance_number=1,
        **equipment(record, settings),
        contains_recognizable_visual_features=False,
        real_world_value_mappings=[mapping],
        voi_lut_transformations=[
            VOILUTTransformation(
                window_center=(low + high) / 2,
                window_width=high - low,
                window_explanation="deep grey matter iron",
            )
        ],
        transfer_syntax_uid=ExplicitVRLittleEndian,
        content_label="QSM",
        content_description="Magnetic susceptibility (ppb)",
        **plane_arguments(geometry, frames.shape[0]),
    )
    pm.SeriesDescription = _series_description(record)
    pm.BodyPartExamined = BODY_PART
    return [pm]


def build_mr_derived_series(
    record: ProcessingRecord,
    sources: Sequence[Dataset],
    chi_ppm: np.ndarray,
    affine_ras: np.ndarray,
    *,
    settings: Settings,
) -> list[Dataset]:
    """One single-frame MR image per slice: int16 pixels, RescaleSlope/Intercept give ppb."""
    geometry = checked_geometry(record, sources, chi_ppm, affine_ras)
    frames = _frames_ppb(chi_ppm)
    slope = rescale_slope_ppb(frames)
    codes = np.round(frames / slope).astype(np.int16)
    series_uid = derived_uid(record, "mr_derived", "series")
    now = datetime.now(UTC)
    return [
        _mr_slice(record, sources, geometry, codes[z], slope, z, series_uid, now, settings)
        for z in range(codes.shape[0])
    ]


def rescale_slope_ppb(frames_ppb: np.ndarray) -> float:
    """The smallest power of ten that fits the largest magnitude in int16: values read as exact
    decimals (0.01, 0.1 or 1 ppb steps), and the error is at most half a step."""
    peak = float(np.max(np.abs(frames_ppb), initial=0.0))
    if peak == 0.0:
        return 1.0
    return 10.0 ** math.ceil(math.log10(peak / _INT16_MAX))


def _frames_ppb(chi_ppm: np.ndarray) -> np.ndarray:
    return dicom_frames(np.asarray(chi_ppm, dtype=np.float64) * 1000.0)


def _series_description(record: ProcessingRecord) -> str:
    reference = record.reference_name
    suffix = f", ref {str(reference).replace('_', ' ')}" if reference else ""
    return f"QSM chi ppb{suffix}"


def _mr_slice(  # noqa: PLR0913 - one slice needs the series context
    record: ProcessingRecord,
    sources: Sequence[Dataset],
    geometry: SliceGeometry,
    codes: np.ndarray,
    slope: float,
    z: int,
    series_uid: str,
    now: datetime,
    settings: Settings,
) -> Dataset:
    source = sources[z] if len(sources) > z else sources[0]
    ds = new_dataset(MRImageStorage)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = derived_uid(
        record, "mr_derived", "instance", str(z)
    )
    for keyword in _COPIED_FROM_SOURCE:
        if keyword in source:
            setattr(ds, keyword, source[keyword].value)
    made = equipment(record, settings)
    ds.Manufacturer = made["manufacturer"]
    ds.ManufacturerModelName = made["manufacturer_model_name"]
    ds.SoftwareVersions = made["software_versions"]
    ds.DeviceSerialNumber = made["device_serial_number"]
    ds.Modality = "MR"
    ds.BodyPartExamined = BODY_PART
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number(settings, "mr_derived")
    ds.SeriesDescription = _series_description(record)
    ds.InstanceNumber = z + 1
    ds.SeriesDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.SeriesTime = ds.ContentTime = now.strftime("%H%M%S")
    ds.ImageType = ["DERIVED", "SECONDARY", "OTHER"]
    ds.DerivationDescription = "Quantitative susceptibility map (qsm-monitor), ppb"
    reference = Dataset()
    reference.ReferencedSOPClassUID = source.SOPClassUID
    reference.ReferencedSOPInstanceUID = source.SOPInstanceUID
    ds.SourceImageSequence = [reference]
    _fill_mr_image(ds, source)
    ds.ImagePositionPatient = [f"{v:.6f}" for v in geometry.position_lps(z)]
    ds.ImageOrientationPatient = [f"{v:.8f}" for v in geometry.image_orientation]
    ds.PixelSpacing = [f"{v:.6g}" for v in geometry.pixel_spacing_mm]
    ds.SliceThickness = f"{geometry.slice_spacing_mm:.6g}"
    ds.SpacingBetweenSlices = f"{geometry.slice_spacing_mm:.6g}"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = codes.shape
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleSlope = f"{slope:g}"
    ds.RescaleIntercept = "0"
    low, high = settings.outputs.display_window_ppb
    ds.WindowCenter = f"{(low + high) / 2:g}"
    ds.WindowWidth = f"{high - low:g}"
    ds.PixelData = np.ascontiguousarray(codes, dtype=np.int16).tobytes()
    return ds


def _fill_mr_image(ds: Dataset, source: Dataset) -> None:
    """MR Image module: the acquisition's own sequence attributes where the source has them at
    the top level (classic images); a derived map has no single echo time, so that stays empty."""
    defaults = {
        "ScanningSequence": "GR",
        "SequenceVariant": "NONE",
        "ScanOptions": "",
        "MRAcquisitionType": "3D",
        "RepetitionTime": "",
        "EchoTrainLength": "",
        "ImagedNucleus": "1H",
    }
    for keyword, default in defaults.items():
        setattr(ds, keyword, source[keyword].value if keyword in source else default)
    ds.EchoTime = ""
