"""Write an `Acquisition` as one Enhanced MR Image Storage object (multi-frame).

Newer scanners (Siemens XA, Philips R5+) send a whole multi-echo acquisition as one object;
frames carry their own position, echo time and complex component in per-frame functional
groups, while orientation and spacing are shared. Frames are ordered component, echo, slice;
magnitude and phase both use 12-bit codes with a per-frame Pixel Value Transformation (phase
codes map to radians).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, EnhancedMRImageStorage, generate_uid

from dicom_node.assemble.vendor_phase import full_circle_code, full_circle_rescale
from dicom_node.geometry import SliceGeometry
from dicom_node.sop_classes import new_dataset
from dicom_node.synthetic.modules import (
    PatientIdentity,
    VendorInfo,
    fill_patient_study,
    fill_series_equipment,
    imaging_frequency_mhz,
    magnitude_codes,
    repetition_time_ms,
    write_dataset,
)
from monitor.types import Acquisition

_DIMENSION_ORGANIZATION_UID = "1.2.826.0.1.3680043.8.498.1"


def write_enhanced_series(
    acq: Acquisition,
    out_dir: Path,
    identity: PatientIdentity,
    vendor: VendorInfo,
    geometry: SliceGeometry,
    series_number: int,
    description: str,
    transfer_syntax: UID | None,
) -> list[Path]:
    """Write the single multi-frame object and return its path in a list (like other styles)."""
    ds = new_dataset(EnhancedMRImageStorage)
    fill_patient_study(ds, identity)
    fill_series_equipment(ds, identity, vendor, str(generate_uid()), series_number, description)
    for classic_only in ("Laterality", "AcquisitionDate", "AcquisitionTime"):
        delattr(ds, classic_only)
    ds.DeviceSerialNumber = "0000"
    ds.InstanceNumber = 1
    ds.AcquisitionDateTime = identity.study_date + identity.study_time
    ds.AcquisitionDuration = 300.0
    _fill_enhanced_image(ds, acq)
    _fill_pulse_sequence(ds)
    mag_codes, mag_slope = magnitude_codes(acq.magnitude)
    phase_slope, phase_intercept = full_circle_rescale(12, 1.0)
    stacks = (
        ("MAGNITUDE", mag_codes, mag_slope, 0.0),
        ("PHASE", full_circle_code(acq.phase_rad, 12), phase_slope, phase_intercept),
    )
    frames: list[Dataset] = []
    pixels: list[np.ndarray] = []
    for component_index, (component, codes, slope, intercept) in enumerate(stacks):
        for echo in range(acq.n_echoes):
            for z in range(acq.shape[2]):
                frames.append(
                    _frame_group(
                        acq,
                        geometry,
                        component,
                        echo,
                        z,
                        slope,
                        intercept,
                        (component_index + 1, echo + 1, z + 1),
                        ds.AcquisitionDateTime,
                    )
                )
                pixels.append(codes[:, :, z, echo].T)
    ds.SharedFunctionalGroupsSequence = Sequence([_shared_group(acq, geometry)])
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    ds.NumberOfFrames = len(frames)
    _fill_dimensions(ds)
    stack = np.stack(pixels).astype(np.uint16)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = stack.shape[1:]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(stack).tobytes()
    if transfer_syntax is not None:
        ds.compress(transfer_syntax)
    return [write_dataset(ds, out_dir / f"s{series_number:03d}_enhanced.dcm")]


def _fill_enhanced_image(ds: Dataset, acq: Acquisition) -> None:
    """Enhanced MR Image module and its MR Image Description macro."""
    ds.ImageType = ["ORIGINAL", "PRIMARY", "T2_STAR", "NONE"]
    ds.ContentQualification = "RESEARCH"
    ds.ResonantNucleus = "1H"
    ds.KSpaceFiltering = "NONE"
    ds.MagneticFieldStrength = f"{acq.b0_tesla:.6g}"
    ds.ApplicableSafetyStandardAgency = "IEC"
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.PresentationLUTShape = "IDENTITY"
    ds.ComplexImageComponent = "MIXED"
    ds.PixelPresentation = "MONOCHROME"
    ds.VolumetricProperties = "VOLUME"
    ds.VolumeBasedCalculationTechnique = "NONE"
    ds.AcquisitionContrast = "T2_STAR"
    ds.AcquisitionContextSequence = Sequence([])


def _fill_pulse_sequence(ds: Dataset) -> None:
    """MR Pulse Sequence module: what a reader checks to know it is a gradient echo."""
    ds.PulseSequenceName = "fl3d"
    ds.MRAcquisitionType = "3D"
    ds.EchoPulseSequence = "GRADIENT"
    ds.MultiPlanarExcitation = "NO"
    ds.PhaseContrast = "NO"
    ds.TimeOfFlightContrast = "NO"
    ds.SteadyStatePulseSequence = "NONE"
    ds.EchoPlanarPulseSequence = "NO"
    ds.SaturationRecovery = "NO"
    ds.SpectrallySelectedSuppression = "NONE"
    ds.OversamplingPhase = "NONE"
    ds.GeometryOfKSpaceTraversal = "RECTILINEAR"
    ds.RectilinearPhaseEncodeReordering = "LINEAR"
    ds.SegmentedKSpaceTraversal = "SINGLE"
    ds.CoverageOfKSpace = "FULL"
    ds.NumberOfKSpaceTrajectories = 1


def _shared_group(acq: Acquisition, geometry: SliceGeometry) -> Dataset:
    """Attributes identical for every frame: spacing, orientation, timing, coils."""
    nx, ny, _ = acq.shape
    measures = Dataset()
    measures.PixelSpacing = [f"{v:.6g}" for v in geometry.pixel_spacing_mm]
    measures.SliceThickness = f"{geometry.slice_spacing_mm:.6g}"
    measures.SpacingBetweenSlices = f"{geometry.slice_spacing_mm:.6g}"
    orientation = Dataset()
    orientation.ImageOrientationPatient = [f"{v:.8f}" for v in geometry.image_orientation]
    timing = Dataset()
    timing.RepetitionTime = repetition_time_ms(acq)
    timing.FlipAngle = 15.0
    timing.EchoTrainLength = acq.n_echoes
    timing.RFEchoTrainLength = 0
    timing.GradientEchoTrainLength = acq.n_echoes
    sar = Dataset()
    sar.SpecificAbsorptionRateDefinition = "IEC_WHOLE_BODY"
    sar.SpecificAbsorptionRateValue = 0.1
    timing.SpecificAbsorptionRateSequence = Sequence([sar])
    timing.GradientOutputType = "DB_DT"
    timing.GradientOutput = 0.0
    timing.OperatingModeSequence = Sequence(
        [_operating_mode(kind) for kind in ("STATIC FIELD", "RF", "GRADIENT")]
    )
    fov = Dataset()
    fov.InPlanePhaseEncodingDirection = "COLUMN"
    fov.MRAcquisitionFrequencyEncodingSteps = nx
    fov.MRAcquisitionPhaseEncodingStepsInPlane = ny
    fov.MRAcquisitionPhaseEncodingStepsOutOfPlane = acq.shape[2]
    fov.PercentSampling = 100.0
    fov.PercentPhaseFieldOfView = 100.0
    modifier = Dataset()
    modifier.InversionRecovery = "NO"
    modifier.FlowCompensation = "NONE"
    modifier.Spoiling = "RF_AND_GRADIENT"
    modifier.T2Preparation = "NO"
    modifier.SpectrallySelectedExcitation = "NONE"
    modifier.SpatialPresaturation = "NONE"
    modifier.PartialFourier = "NO"
    modifier.ParallelAcquisition = "NO"
    imaging_modifier = Dataset()
    imaging_modifier.MagnetizationTransfer = "NONE"
    imaging_modifier.BloodSignalNulling = "NO"
    imaging_modifier.Tagging = "NONE"
    imaging_modifier.TransmitterFrequency = imaging_frequency_mhz(acq)
    imaging_modifier.PixelBandwidth = 260.0
    receive = Dataset()
    receive.ReceiveCoilName = "Head32"
    receive.ReceiveCoilManufacturerName = "Synthetic"
    receive.ReceiveCoilType = "VOLUME"
    receive.QuadratureReceiveCoil = "NO"
    transmit = Dataset()
    transmit.TransmitCoilName = "Body"
    transmit.TransmitCoilManufacturerName = "Synthetic"
    transmit.TransmitCoilType = "BODY"
    averages = Dataset()
    averages.NumberOfAverages = 1.0
    anatomy = Dataset()
    region = Dataset()
    region.CodeValue = "12738006"
    region.CodingSchemeDesignator = "SCT"
    region.CodeMeaning = "Brain"
    anatomy.AnatomicRegionSequence = Sequence([region])
    anatomy.FrameLaterality = "U"
    shared = Dataset()
    shared.PixelMeasuresSequence = Sequence([measures])
    shared.PlaneOrientationSequence = Sequence([orientation])
    shared.MRTimingAndRelatedParametersSequence = Sequence([timing])
    shared.MRFOVGeometrySequence = Sequence([fov])
    shared.MRModifierSequence = Sequence([modifier])
    shared.MRImagingModifierSequence = Sequence([imaging_modifier])
    shared.MRReceiveCoilSequence = Sequence([receive])
    shared.MRTransmitCoilSequence = Sequence([transmit])
    shared.MRAveragesSequence = Sequence([averages])
    shared.FrameAnatomySequence = Sequence([anatomy])
    return shared


def _operating_mode(kind: str) -> Dataset:
    item = Dataset()
    item.OperatingModeType = kind
    item.OperatingMode = "IEC_NORMAL"
    return item


def _frame_group(
    acq: Acquisition,
    geometry: SliceGeometry,
    component: str,
    echo: int,
    z: int,
    slope: float,
    intercept: float,
    index: tuple[int, int, int],
    acquisition_datetime: str,
) -> Dataset:
    """Per-frame groups: position, echo time, complex component and rescale of one frame."""
    content = Dataset()
    content.FrameAcquisitionNumber = 1
    content.FrameReferenceDateTime = acquisition_datetime
    content.FrameAcquisitionDateTime = acquisition_datetime
    content.FrameAcquisitionDuration = 300.0
    content.DimensionIndexValues = list(index)
    content.StackID = "1"
    content.InStackPositionNumber = z + 1
    content.TemporalPositionIndex = 1
    position = Dataset()
    position.ImagePositionPatient = [f"{v:.6f}" for v in geometry.position_lps(z)]
    echo_item = Dataset()
    echo_item.EffectiveEchoTime = acq.te_s[echo] * 1000.0
    frame_type = Dataset()
    frame_type.FrameType = ["ORIGINAL", "PRIMARY", "T2_STAR", "NONE"]
    frame_type.PixelPresentation = "MONOCHROME"
    frame_type.VolumetricProperties = "VOLUME"
    frame_type.VolumeBasedCalculationTechnique = "NONE"
    frame_type.ComplexImageComponent = component
    frame_type.AcquisitionContrast = "T2_STAR"
    transformation = Dataset()
    transformation.RescaleIntercept = f"{intercept:.10g}"
    transformation.RescaleSlope = f"{slope:.10g}"
    transformation.RescaleType = "US"
    group = Dataset()
    group.FrameContentSequence = Sequence([content])
    group.PlanePositionSequence = Sequence([position])
    group.MREchoSequence = Sequence([echo_item])
    group.MRImageFrameTypeSequence = Sequence([frame_type])
    group.PixelValueTransformationSequence = Sequence([transformation])
    return group


def _fill_dimensions(ds: Dataset) -> None:
    """Dimensions: complex component, echo, then position within the stack."""
    ds.DimensionOrganizationSequence = Sequence([Dataset()])
    ds.DimensionOrganizationSequence[0].DimensionOrganizationUID = _DIMENSION_ORGANIZATION_UID
    ds.DimensionOrganizationType = "3D"
    pointers = (
        ("MRImageFrameTypeSequence", "ComplexImageComponent"),
        ("MREchoSequence", "EffectiveEchoTime"),
        ("FrameContentSequence", "InStackPositionNumber"),
    )
    items = []
    for functional_group, attribute in pointers:
        item = Dataset()
        item.DimensionOrganizationUID = _DIMENSION_ORGANIZATION_UID
        item.DimensionIndexPointer = attribute
        item.FunctionalGroupPointer = functional_group
        items.append(item)
    ds.DimensionIndexSequence = Sequence(items)
