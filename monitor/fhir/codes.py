"""Code systems and codes used in our FHIR resources, in one place so that they never drift.

The product code system URL is a fixed canonical identifier (documented in docs/fhir.md); it
does not need to resolve. Changing any code or URL here breaks every EHR mapping built on it.
"""

from __future__ import annotations

from typing import Any

from monitor import __version__

PRODUCT_CODE_SYSTEM = "https://qsm-monitor.org/fhir/CodeSystem/qsm-monitor"
RESULT_IDENTIFIER_SYSTEM = "https://qsm-monitor.org/fhir/sid/result"

SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
DICOM_UID_SYSTEM = "urn:dicom:uid"
DICOM_DCM = "http://dicom.nema.org/resources/ontology/DCM"
DCM_MR = "MR"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
REFERENCE_RANGE_MEANING = "http://terminology.hl7.org/CodeSystem/referencerange-meaning"
DIAGNOSTIC_SERVICE_SECTION = "http://terminology.hl7.org/CodeSystem/v2-0074"
FLAG_CATEGORY = "http://terminology.hl7.org/CodeSystem/flag-category"

STRUCTURES: dict[str, tuple[str, str]] = {
    "thalamus": ("42695009", "Thalamus"),
    "caudate": ("11000004", "Caudate nucleus"),
    "putamen": ("89278009", "Putamen"),
    "globus_pallidus": ("14738005", "Globus pallidus"),
}
"""Structure name in the record -> SNOMED CT body structure (code, display as in DICOM CID
7140, the same words the SR uses)."""

LATERALITY: dict[str, tuple[str, str]] = {
    "left": ("7771000", "Left"),
    "right": ("24028007", "Right"),
    "bilateral": ("51440002", "Right and left"),
}
"""Side -> SNOMED CT laterality qualifier value (code, display)."""

INTERPRETATIONS: dict[str, str] = {"L": "Low", "N": "Normal", "H": "High"}

STRUCTURE_NAMES = {
    "thalamus": "thalamus",
    "caudate": "caudate nucleus",
    "putamen": "putamen",
    "globus_pallidus": "globus pallidus",
}
SIDES = ("left", "right", "bilateral")
"""Bilateral is the record's headline value (the one z-scores and risk use most)."""


def measure_code(structure: str, side: str) -> str:
    """Own code per structure and side, so EHR flowsheets keep left and right apart."""
    code = structure.replace("_", "-")
    return code if side == "bilateral" else f"{code}-{side}"


def _measure_display(structure: str, side: str) -> str:
    where = "both sides" if side == "bilateral" else f"{side} side"
    return f"Mean magnetic susceptibility of the {STRUCTURE_NAMES[structure]}, {where}"


PRODUCT_CODES: dict[str, str] = {
    **{
        measure_code(structure, side): _measure_display(structure, side)
        for structure in STRUCTURE_NAMES
        for side in SIDES
    },
    "z-score": "Normative z-score for age",
    "percentile": "Normative percentile for age",
    "change-since-previous": "Change since the previous visit",
    "change-since-previous-percent": "Relative change since the previous visit",
    "annualised-change": "Annualised rate of change",
    "reliable-change": "Change exceeds measurement variability",
    "qsm-report": "Brain iron (QSM) monitoring report",
    "iron-progression": "Progression of deep grey matter iron",
    "risk-elevated": "Progression risk elevated",
    "risk-not-elevated": "Progression risk not elevated",
    "risk-indeterminate": "Progression risk indeterminate",
    "iron-progression-flag": "Brain iron progression risk elevated: review QSM results",
    "reference-whole-brain": "QSM referenced to the whole-brain mean",
    "reference-csf": "QSM referenced to cerebrospinal fluid",
    "mean-whole-brain-reference": "Mean magnetic susceptibility against the whole-brain mean",
}
"""Every code of the product code system with its display (docs/fhir.md lists them)."""


REFERENCE_REGIONS = {"whole_brain": "the whole-brain mean", "csf": "cerebrospinal fluid"}


def reference_words(region: str) -> str:
    """What susceptibility values are relative to, in words (an unknown name as given)."""
    return REFERENCE_REGIONS.get(region, region.replace("_", " "))


def coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    """A Coding as FHIR JSON; display left out when unknown rather than invented."""
    result = {"system": system, "code": code}
    if display is not None:
        result["display"] = display
    return result


def product_concept(code: str, text: str | None = None) -> dict[str, Any]:
    """A CodeableConcept in our code system; KeyError for an undocumented code is deliberate."""
    display = PRODUCT_CODES[code]
    return {"coding": [coding(PRODUCT_CODE_SYSTEM, code, display)], "text": text or display}


def ucum_quantity(value: float, code: str, unit: str) -> dict[str, Any]:
    """A Quantity with a UCUM code (what EHRs chart and convert) and a human unit label."""
    return {"value": round(float(value), 3), "unit": unit, "system": UCUM, "code": code}


def ppb(value: float) -> dict[str, Any]:
    return ucum_quantity(value, "[ppb]", "ppb")


def code_system() -> dict[str, Any]:
    """Our code system as a FHIR CodeSystem, for sites that load it into a terminology server."""
    return {
        "resourceType": "CodeSystem",
        "url": PRODUCT_CODE_SYSTEM,
        "version": __version__,
        "name": "QsmMonitorCodes",
        "title": "qsm-monitor measurement and report codes",
        "status": "active",
        "content": "complete",
        "caseSensitive": True,
        "count": len(PRODUCT_CODES),
        "concept": [{"code": code, "display": display} for code, display in PRODUCT_CODES.items()],
    }
