"""DICOM modules shared by every synthetic series style (patient, study, series, equipment, MR).

Split from the writers so the classic single-frame styles and the Enhanced MR multi-frame style
fill the common modules identically; only pixel layout and vendor conventions differ.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from dicom_node.geometry import SliceGeometry, slice_normal
from monitor.types import GYROMAGNETIC_HZ_PER_T, Acquisition


@dataclass(frozen=True)
class PatientIdentity:
    """Who and which visit; a demo reuses one patient with several studies to build history.

    Dates are DICOM DA strings (YYYYMMDD). Defaults are obviously synthetic.
    """

    patient_id: str = "QSM-DEMO-0001"
    patient_name: str = "Phantom^Demo"
    birth_date: str = "19600101"
    sex: str = "O"
    study_date: str = "20260101"
    study_time: str = "090000"
    study_uid: str = field(default_factory=lambda: str(generate_uid()))
    accession_number: str = "DEMO0001"
    study_id: str = "1"
    frame_of_reference_uid: str = field(default_factory=lambda: str(generate_uid()))
    """One per study visit: magnitude and phase series of one scan share it."""


@dataclass(frozen=True)
class VendorInfo:
    manufacturer: str
    model: str
    sequence_name: str


def fill_patient_study(ds: Dataset, identity: PatientIdentity) -> None:
    """Patient, General Study, Patient Study and Frame of Reference modules."""
    ds.PatientName = identity.patient_name
    ds.PatientID = identity.patient_id
    ds.PatientBirthDate = identity.birth_date
    ds.PatientSex = identity.sex
    ds.StudyInstanceUID = identity.study_uid
    ds.StudyDate = identity.study_date
    ds.StudyTime = identity.study_time
    ds.StudyID = identity.study_id
    ds.AccessionNumber = identity.accession_number
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "Brain QSM"
    ds.FrameOfReferenceUID = identity.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""


def fill_series_equipment(
    ds: Dataset,
    identity: PatientIdentity,
    vendor: VendorInfo,
    series_uid: str,
    series_number: int,
    description: str,
) -> None:
    """General Series, General Equipment and the acquisition date/time of the General Image."""
    ds.Modality = "MR"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    ds.ProtocolName = description
    ds.PatientPosition = "HFS"
    ds.Laterality = None
    ds.SeriesDate = identity.study_date
    ds.SeriesTime = identity.study_time
    ds.Manufacturer = vendor.manufacturer
    ds.ManufacturerModelName = vendor.model
    ds.InstitutionName = "Synthetic"
    ds.StationName = "SYNTH"
    ds.SoftwareVersions = "qsm-monitor synthetic"
    ds.ContentDate = identity.study_date
    ds.ContentTime = identity.study_time
    ds.AcquisitionDate = identity.study_date
    ds.AcquisitionTime = identity.study_time
    ds.AcquisitionNumber = 1


def fill_gre_classic(ds: Dataset, acq: Acquisition, vendor: VendorInfo) -> None:
    """MR Image module attributes of a 3-D multi-echo spoiled gradient echo (single-frame IOD)."""
    nx, ny, _ = acq.shape
    ds.ScanningSequence = "GR"
    ds.SequenceVariant = ["SP", "OSP"]
    ds.ScanOptions = ""
    ds.MRAcquisitionType = "3D"
    ds.SequenceName = vendor.sequence_name
    ds.AngioFlag = "N"
    ds.RepetitionTime = _ds(repetition_time_ms(acq))
    ds.EchoTrainLength = acq.n_echoes
    ds.NumberOfAverages = 1
    ds.ImagingFrequency = _ds(imaging_frequency_mhz(acq))
    ds.ImagedNucleus = "1H"
    ds.MagneticFieldStrength = _ds(acq.b0_tesla)
    ds.NumberOfPhaseEncodingSteps = ny
    ds.PercentSampling = 100
    ds.PercentPhaseFieldOfView = 100
    ds.PixelBandwidth = 260
    ds.AcquisitionMatrix = [0, nx, ny, 0]
    ds.InPlanePhaseEncodingDirection = "COL"
    ds.FlipAngle = 15
    ds.VariableFlipAngleFlag = "N"
    ds.SAR = 0.1
    ds.dBdt = 0
    ds.ReceiveCoilName = "Head32"
    ds.TransmitCoilName = "Body"


def repetition_time_ms(acq: Acquisition) -> float:
    """A plausible TR: last echo plus readout and spoiling."""
    return round(acq.te_s[-1] * 1000.0 + 8.0, 2)


def imaging_frequency_mhz(acq: Acquisition) -> float:
    return acq.b0_tesla * GYROMAGNETIC_HZ_PER_T / 1e6


def magnitude_codes(magnitude: np.ndarray, bits: int = 12) -> tuple[np.ndarray, float]:
    """Unsigned codes and the RescaleSlope that restores the caller's magnitude units."""
    peak = float(np.max(magnitude, initial=0.0))
    slope = peak / (2**bits - 1) if peak > 0 else 1.0
    codes = np.clip(np.round(magnitude / slope), 0, 2**bits - 1).astype(np.uint16)
    return codes, slope


def write_dataset(ds: Dataset, path: Path) -> Path:
    """Write atomically-enough for tests and demos: a whole file or none at the final name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".part")
    ds.save_as(partial, enforce_file_format=True)
    partial.replace(path)
    return path


def _ds(value: float) -> str:
    """Decimal String within its 16-character limit."""
    return f"{value:.10g}"[:16]


def fill_slice_geometry(ds: Dataset, geometry: SliceGeometry, z: int) -> None:
    """Image Plane module of slice `z` (position, orientation, spacing, slice location)."""
    ds.ImagePositionPatient = [f"{v:.6f}" for v in geometry.position_lps(z)]
    ds.ImageOrientationPatient = [f"{v:.8f}" for v in geometry.image_orientation]
    ds.PixelSpacing = [f"{v:.6g}" for v in geometry.pixel_spacing_mm]
    ds.SliceThickness = f"{geometry.slice_spacing_mm:.6g}"
    ds.SpacingBetweenSlices = f"{geometry.slice_spacing_mm:.6g}"
    location = np.dot(geometry.position_lps(z), slice_normal(geometry.image_orientation))
    ds.SliceLocation = f"{float(location):.6f}"
