"""One Observation per deep grey matter structure and side, from the processing record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from monitor.fhir.codes import (
    INTERPRETATION,
    INTERPRETATIONS,
    LATERALITY,
    OBSERVATION_CATEGORY,
    REFERENCE_RANGE_MEANING,
    SIDES,
    SNOMED,
    STRUCTURE_NAMES,
    STRUCTURES,
    coding,
    measure_code,
    ppb,
    product_concept,
    ucum_quantity,
)
from monitor.fhir.ids import ResultKeys
from monitor.record import REPORTED_DECIMALS, ProcessingRecord, Values

BODY_SITE_EXTENSION = "http://hl7.org/fhir/StructureDefinition/bodySite"
BODY_STRUCTURE_ID = "site"


@dataclass(frozen=True)
class Entry:
    """A resource with the full URL and business identifier its transaction entry needs."""

    full_url: str
    resource: dict[str, Any]
    identifier: dict[str, Any]


@dataclass(frozen=True)
class Context:
    """What every result resource of one acquisition shares."""

    keys: ResultKeys
    subject: dict[str, Any]
    imaging_study: dict[str, Any]
    effective: str
    reference_region: str
    method_text: str
    norms_text: str | None
    amended: bool = False
    """The acquisition was re-assessed after its results were first sent (e.g. an earlier
    exam arrived later): results carry status "amended" and replace the ones sent before."""
    notes: tuple[str, ...] = ()
    """Noted on every value: the visits changes are against, and the acquisition and
    processing provenance (2024 QSM consensus)."""
    side_notes: tuple[str, ...] = ()
    """Noted on the left and right values only (`Qc.left_right_caution`)."""

    @property
    def result_status(self) -> str:
        return "amended" if self.amended else "final"


def structure_observations(record: ProcessingRecord, context: Context) -> list[Entry]:
    """Observations for every measured structure and side, in a fixed order; a structure or
    side withheld from the record is left out."""
    entries = []
    for structure in STRUCTURES:
        for side in SIDES:
            values = record.structures.values(structure, side)
            if values is not None and values.mean_ppb is not None:
                against_brain = record.mean_against_whole_brain(structure, side)
                entries.append(_observation(structure, side, values, against_brain, context))
    return entries


def _observation(
    structure: str, side: str, values: Values, against_brain: float | None, ctx: Context
) -> Entry:
    """`against_brain`: the mean against the whole brain when `values` use another reference
    (a component, so the value and its reference travel together)."""
    values = values.rounded()
    identifier = ctx.keys.identifier("observation", structure, side)
    body_site, body_structure = _body_site(structure, side, ctx.subject)
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "contained": [body_structure],
        "identifier": [identifier],
        "status": ctx.result_status,
        "category": [
            {"coding": [coding(OBSERVATION_CATEGORY, "imaging", "Imaging")], "text": "Imaging"}
        ],
        "code": product_concept(measure_code(structure, side)),
        "subject": ctx.subject,
        "effectiveDateTime": ctx.effective,
        "valueQuantity": ppb(values.mean_ppb),
        "bodySite": body_site,
        "method": product_concept(
            "reference-" + ctx.reference_region.replace("_", "-"), ctx.method_text
        ),
        "derivedFrom": [ctx.imaging_study],
    }
    interpretation = values.interpretation
    if interpretation in INTERPRETATIONS:
        resource["interpretation"] = [
            {"coding": [coding(INTERPRETATION, interpretation, INTERPRETATIONS[interpretation])]}
        ]
    reference_range = _reference_range(values.reference_range_ppb, ctx.norms_text)
    if reference_range:
        resource["referenceRange"] = [reference_range]
    components = _components(values)
    if against_brain is not None:
        components.append(
            {
                "code": product_concept("mean-whole-brain-reference"),
                "valueQuantity": ppb(round(against_brain, REPORTED_DECIMALS["mean_ppb"])),
            }
        )
    if components:
        resource["component"] = components
    notes = ctx.notes if side == "bilateral" else (*ctx.notes, *ctx.side_notes)
    if notes:
        resource["note"] = [{"text": text} for text in notes]
    return Entry(ctx.keys.full_url("observation", structure, side), resource, identifier)


def _body_site(structure: str, side: str, subject: dict[str, Any]) -> tuple[dict, dict]:
    """The SNOMED CT structure as the searchable bodySite code, with laterality in a contained
    BodyStructure (R4's place for a location qualifier) linked by the core bodySite extension.

    R4 Observation has no laterality element, and a second coding in bodySite would claim an
    equivalent meaning; this keeps ``bodySite`` matching a plain search on the structure code.
    """
    structure_code, structure_display = STRUCTURES[structure]
    side_code, side_display = LATERALITY[side]
    location = {"coding": [coding(SNOMED, structure_code, structure_display)]}
    body_structure = {
        "resourceType": "BodyStructure",
        "id": BODY_STRUCTURE_ID,
        "location": location,
        "locationQualifier": [{"coding": [coding(SNOMED, side_code, side_display)]}],
        "patient": subject,
    }
    where = "both sides" if side == "bilateral" else side
    body_site = {
        **location,
        "text": f"{STRUCTURE_NAMES[structure]}, {where}",
        "extension": [
            {"url": BODY_SITE_EXTENSION, "valueReference": {"reference": f"#{BODY_STRUCTURE_ID}"}}
        ],
    }
    return body_site, body_structure


def _reference_range(bounds: Any, norms_text: str | None) -> dict[str, Any] | None:
    if not bounds or len(bounds) != 2 or None in bounds:
        return None
    low, high = bounds
    result: dict[str, Any] = {
        "low": ppb(low),
        "high": ppb(high),
        "type": {"coding": [coding(REFERENCE_RANGE_MEANING, "normal", "Normal Range")]},
    }
    if norms_text:
        result["text"] = norms_text
    return result


def _components(values: Values) -> list[dict[str, Any]]:
    """Normative and longitudinal context; absent values (e.g. at baseline) are left out."""
    quantities = (
        ("z-score", "z", "{SD}", "SD"),
        ("percentile", "percentile", "%", "%"),
        ("change-since-previous", "change_ppb", "[ppb]", "ppb"),
        ("change-since-previous-percent", "change_pct", "%", "%"),
        ("annualised-change", "annual_change_ppb_per_year", "[ppb]/a", "ppb/year"),
    )
    components = [
        {"code": product_concept(code), "valueQuantity": ucum_quantity(value, ucum, unit)}
        for code, key, ucum, unit in quantities
        if (value := getattr(values, key)) is not None
    ]
    if values.reliable_change is not None:
        components.append(
            {
                "code": product_concept("reliable-change"),
                "valueBoolean": bool(values.reliable_change),
            }
        )
    return components
