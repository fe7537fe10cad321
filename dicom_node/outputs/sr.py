"""TID 1500 Measurement Report (Comprehensive 3D SR) of one processed study.

One measurement group per structure and side (left, right, both together), each with the mean
magnetic susceptibility (its normative z-score, percentile and normal range as measurement
properties), median, SD, volume and change since the previous study, plus one group for the
progression risk with its reasons. Values absent from the record (no norms for the age, no
previous study at baseline) are left out rather than invented.

Given the DICOM SEG of the labels, each side's group is a TID 1411 volumetric ROI group on its
segment (TID 1411 needs the region itself, not only its name); without a SEG, and for both
sides together (no single segment), groups are TID 1501 with finding site and laterality.
Susceptibility values reference the QSM map they were measured on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from highdicom.sr import (
    AlgorithmIdentification,
    CodeContentItem,
    CodedConcept,
    Comprehensive3DSR,
    DeviceObserverIdentifyingAttributes,
    FindingSite,
    Measurement,
    MeasurementProperties,
    MeasurementReport,
    MeasurementsAndQualitativeEvaluations,
    MeasurementStatisticalProperties,
    NormalRangeProperties,
    NumContentItem,
    ObservationContext,
    ObserverContext,
    QualitativeEvaluation,
    ReferencedSegment,
    RelationshipTypeValues,
    SourceImageForMeasurement,
    SourceImageForMeasurementGroup,
    TextContentItem,
    TrackingIdentifier,
    VolumetricROIMeasurementsAndQualitativeEvaluations,
)
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from dicom_node.outputs import concepts as c
from dicom_node.outputs.common import (
    MANUFACTURER,
    MODEL_NAME,
    check_sources,
    derived_uid,
    producing_version,
    series_number,
    stable_uid,
    tracking_uid,
)
from dicom_node.outputs.segmentation import SEGMENT_NUMBERS
from monitor.record import REPORTED_DECIMALS, ProcessingRecord, Values
from monitor.segment.structures import SIDES, STRUCTURES
from monitor.settings import Settings

REPORTED_SIDES: tuple[str, ...] = (*SIDES, "bilateral")
SERIES_DESCRIPTION = "QSM deep grey matter iron report"


def build_measurement_report(
    record: ProcessingRecord,
    sources: Sequence[Dataset],
    qsm_reference: Sequence[Dataset] | None = None,
    *,
    settings: Settings,
    segmentation: Dataset | None = None,
    predecessor: Dataset | None = None,
) -> Dataset:
    """The SR for `record`, in the study of `sources` (the first-echo magnitude images).

    `qsm_reference` are the QSM map objects the numbers were measured on (the parametric map, or
    the MR derived slices); the measurements reference them and they join the SR's evidence.
    `predecessor` is the SR an amended record replaces (Predecessor Documents Sequence), so a
    viewer shows the new report as the current version of the old one.
    With `segmentation` (`dicom_node.outputs.segmentation.build_segmentation`) each side's group
    is a TID 1411 volumetric ROI group on its segment; without it, or for both sides together
    (no single segment), a TID 1501 group named by finding site and laterality.
    """
    check_sources(record, sources)
    if record.error:
        raise ValueError("the record is a failure: there are no measurements to report")
    references = list(qsm_reference or ())
    provenance = record.qc.provenance
    algorithm = AlgorithmIdentification(
        name=MODEL_NAME,
        version=producing_version(record),
        parameters=None if provenance is None else provenance.lines(),
    )
    segments = _referenced_segments(segmentation)
    groups = [
        group
        for structure in STRUCTURES
        for side in REPORTED_SIDES
        for group in (
            _structure_group(
                record, (structure, side), algorithm, references, segments.get((structure, side))
            ),
            _whole_brain_group(record, (structure, side), algorithm, references),
        )
        if group is not None
    ]
    risk = _risk_group(record, algorithm)
    if risk is not None:
        groups.append(risk)
    if not groups:
        raise ValueError("the record has no structure measurements and no risk to report")
    report = MeasurementReport(
        observation_context=ObservationContext(
            observer_device_context=ObserverContext(
                observer_type=codes.DCM.Device,
                observer_identifying_attributes=DeviceObserverIdentifyingAttributes(
                    uid=stable_uid("device", settings.node.ae_title),
                    name=MODEL_NAME,
                    manufacturer_name=MANUFACTURER,
                    model_name=f"{MODEL_NAME} {producing_version(record)}",
                    serial_number=settings.node.ae_title,
                ),
            )
        ),
        procedure_reported=c.IMAGING_PROCEDURE,
        imaging_measurements=groups,
    )
    return Comprehensive3DSR(
        evidence=[*sources, *references, *([segmentation] if segmentation else [])],
        content=report[0],
        series_instance_uid=derived_uid(record, "sr", "series"),
        series_number=series_number(settings, "sr"),
        sop_instance_uid=derived_uid(record, "sr", "instance"),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=True,
        series_description=SERIES_DESCRIPTION,
        manufacturer_model_name=MODEL_NAME,
        software_versions=producing_version(record),
        device_serial_number=settings.node.ae_title,
        coding_schemes=[c.PRIVATE_SCHEME_ITEM],
        previous_versions=None if predecessor is None else [predecessor],
    )


def _referenced_segments(segmentation: Dataset | None) -> dict[tuple[str, str], ReferencedSegment]:
    """(structure, side) -> reference to its segment, for segments that have any frames."""
    if segmentation is None:
        return {}
    present = {
        int(frame.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        for frame in segmentation.PerFrameFunctionalGroupsSequence
    }
    return {
        key: ReferencedSegment.from_segmentation(segmentation, number)
        for key, number in SEGMENT_NUMBERS.items()
        if number in present
    }


def _structure_group(
    record: ProcessingRecord,
    where: tuple[str, str],
    algorithm: AlgorithmIdentification,
    references: Sequence[Dataset],
    segment: ReferencedSegment | None,
) -> (
    MeasurementsAndQualitativeEvaluations
    | VolumetricROIMeasurementsAndQualitativeEvaluations
    | None
):
    structure, side = where
    values = record.structures.values(structure, side)
    if values is None:
        return None
    values = values.rounded()
    measurements = _measurements(values, references if segment is not None else ())
    if not measurements:
        return None
    reliable = values.reliable_change
    label = f"{side} {structure.replace('_', ' ')}"
    common: dict[str, Any] = {
        "tracking_identifier": TrackingIdentifier(
            uid=tracking_uid(record, structure, side), identifier=label
        ),
        "algorithm_id": algorithm,
        "finding_sites": [
            FindingSite(anatomic_location=c.FINDING_SITES[structure], laterality=c.LATERALITY[side])
        ],
        "measurements": measurements,
        "qualitative_evaluations": [
            QualitativeEvaluation(c.RELIABLE_CHANGE, c.YES if reliable else c.NO)
        ]
        if reliable is not None
        else None,
    }
    if segment is not None:
        group = VolumetricROIMeasurementsAndQualitativeEvaluations(
            referenced_segment=segment, **common
        )
    else:
        group = MeasurementsAndQualitativeEvaluations(
            source_images=[
                SourceImageForMeasurementGroup.from_source_image(ds) for ds in references
            ]
            or None,
            **common,
        )
    region = _reference_region(record)
    if region is not None:
        _add_reference_region(group, region)
    caution = record.qc.left_right_caution
    if caution and side in SIDES:
        group[0].ContentSequence.append(
            TextContentItem(
                name=c.COMMENT, value=caution, relationship_type=RelationshipTypeValues.CONTAINS
            )
        )
    return group


def _whole_brain_group(
    record: ProcessingRecord,
    where: tuple[str, str],
    algorithm: AlgorithmIdentification,
    references: Sequence[Dataset],
) -> MeasurementsAndQualitativeEvaluations | None:
    """The structure side's mean against the whole brain, when the record's values use another
    reference: its own group, because a group carries one reference region."""
    structure, side = where
    mean = record.mean_against_whole_brain(structure, side)
    if mean is None:
        return None
    label = f"{side} {structure.replace('_', ' ')}, whole-brain reference"
    group = MeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(
            uid=tracking_uid(record, structure, f"{side}-whole-brain"), identifier=label
        ),
        algorithm_id=algorithm,
        finding_sites=[
            FindingSite(anatomic_location=c.FINDING_SITES[structure], laterality=c.LATERALITY[side])
        ],
        measurements=[
            Measurement(
                name=c.MAGNETIC_SUSCEPTIBILITY,
                value=round(mean, REPORTED_DECIMALS["mean_ppb"]),
                unit=c.PPB,
                derivation=c.MEAN,
                referenced_images=[
                    SourceImageForMeasurement.from_source_image(ds) for ds in references
                ]
                or None,
            )
        ],
    )
    _add_reference_region(group, c.REFERENCE_REGIONS["whole_brain"])
    return group


def _add_reference_region(group: Sequence[Dataset], region: CodedConcept) -> None:
    """State what zero means for the group's susceptibility values (concept modifier)."""
    group[0].ContentSequence.append(
        CodeContentItem(
            name=c.REFERENCE_REGION,
            value=region,
            relationship_type=RelationshipTypeValues.HAS_CONCEPT_MOD,
        )
    )


def _measurements(values: Values, measured_on: Sequence[Dataset]) -> list[Measurement]:
    """Every number the record has for one structure and side, in a fixed order; susceptibility
    values reference the map objects in `measured_on`."""
    plain = [
        (c.MAGNETIC_SUSCEPTIBILITY, "mean_ppb", c.PPB, c.MEAN),
        (c.MAGNETIC_SUSCEPTIBILITY, "median_ppb", c.PPB, c.MEDIAN),
        (c.MAGNETIC_SUSCEPTIBILITY, "sd_ppb", c.PPB, c.STANDARD_DEVIATION),
        (c.VOLUME, "volume_ml", c.MILLILITRE, None),
        (c.CHANGE_SINCE_PREVIOUS, "change_ppb", c.PPB, None),
        (c.PERCENT_CHANGE_SINCE_PREVIOUS, "change_pct", c.PERCENT, None),
        (c.ANNUAL_CHANGE, "annual_change_ppb_per_year", c.PPB_PER_YEAR, None),
    ]
    measurements = []
    for name, key, unit, derivation in plain:
        value = getattr(values, key)
        if value is None:
            continue
        measurements.append(
            Measurement(
                name=name,
                value=float(value),
                unit=unit,
                derivation=derivation,
                properties=_normative_properties(values) if key == "mean_ppb" else None,
                referenced_images=[
                    SourceImageForMeasurement.from_source_image(ds) for ds in measured_on
                ]
                if name == c.MAGNETIC_SUSCEPTIBILITY and measured_on
                else None,
            )
        )
    return measurements


def _normative_properties(values: Values) -> MeasurementProperties | None:
    """Where the mean lies in the normative population: z-score, percentile, normal range."""
    ranking = [
        NumContentItem(
            name=name,
            value=float(getattr(values, key)),
            unit=unit,
            relationship_type=RelationshipTypeValues.HAS_PROPERTIES,
        )
        for name, key, unit in (
            (c.Z_SCORE, "z", c.NO_UNITS),
            (c.PERCENTILE, "percentile", c.PERCENT),
        )
        if getattr(values, key) is not None
    ]
    limits = values.reference_range_ppb or (None, None)
    bounds = [
        NumContentItem(
            name=name,
            value=float(limit),
            unit=c.PPB,
            relationship_type=RelationshipTypeValues.HAS_PROPERTIES,
        )
        for name, limit in zip((c.NORMAL_RANGE_LOWER, c.NORMAL_RANGE_UPPER), limits, strict=True)
        if limit is not None
    ]
    normality = c.NORMALITY.get(str(values.interpretation))
    if not (ranking or bounds or normality):
        return None
    return MeasurementProperties(
        normality=normality,
        measurement_statistical_properties=MeasurementStatisticalProperties(ranking)
        if ranking
        else None,
        normal_range_properties=NormalRangeProperties(bounds) if bounds else None,
    )


def _reference_region(record: ProcessingRecord) -> CodedConcept | None:
    name = record.reference_name
    return c.REFERENCE_REGIONS.get(str(name)) if name else None


def _risk_group(
    record: ProcessingRecord, algorithm: AlgorithmIdentification
) -> MeasurementsAndQualitativeEvaluations | None:
    """The progression risk as a coded evaluation, each reason as plain text beside it."""
    risk = record.risk
    if risk is None or risk.level not in c.RISK_LEVELS:
        return None
    group = MeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(
            uid=derived_uid(record, "risk"), identifier="progression risk"
        ),
        algorithm_id=algorithm,
        qualitative_evaluations=[
            QualitativeEvaluation(c.PROGRESSION_RISK, c.RISK_LEVELS[risk.level])
        ],
    )
    comparison = () if record.comparison_text is None else (record.comparison_text,)
    for reason in (*risk.reasons, *comparison):
        group[0].ContentSequence.append(
            TextContentItem(
                name=c.RISK_BASIS,
                value=str(reason),
                relationship_type=RelationshipTypeValues.CONTAINS,
            )
        )
    return group
