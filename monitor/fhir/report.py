"""DiagnosticReport, RiskAssessment and Flag: the summary an EHR user reads first.

Wording is decision support: it states measurements against norms and history and leaves the
clinical judgement to the reader; it never names a disease.
"""

from __future__ import annotations

from typing import Any

from monitor.fhir.codes import (
    DIAGNOSTIC_SERVICE_SECTION,
    FLAG_CATEGORY,
    PRODUCT_CODES,
    STRUCTURES,
    coding,
    product_concept,
    reference_words,
)
from monitor.fhir.observations import Context, Entry
from monitor.record import BILATERAL, ProcessingRecord, Risk, Values
from monitor.tracking.risk import DISCLAIMER as RISK_DISCLAIMER

DISCLAIMER = (
    "Decision support, not a diagnosis: interpret together with the clinical picture and "
    "the images."
)
_RANGE_WORDS = {
    "L": "below the normative range",
    "N": "within the normative range",
    "H": "above the normative range",
}


def diagnostic_report(
    record: ProcessingRecord, observations: list[Entry], context: Context
) -> Entry:
    identifier = context.keys.identifier("diagnostic-report")
    resource = {
        "resourceType": "DiagnosticReport",
        "identifier": [identifier],
        "status": context.result_status,
        "category": [{"coding": [coding(DIAGNOSTIC_SERVICE_SECTION, "RAD", "Radiology")]}],
        "code": product_concept("qsm-report"),
        "subject": context.subject,
        "effectiveDateTime": context.effective,
        "result": [{"reference": entry.full_url} for entry in observations],
        "imagingStudy": [context.imaging_study],
        "conclusion": conclusion(record),
    }
    return Entry(context.keys.full_url("diagnostic-report"), resource, identifier)


def conclusion(record: ProcessingRecord) -> str:
    """Plain-language summary: each structure (both sides), the change, the risk level.

    Built from sentences, each ended once: reasons arrive as sentences of their own, and
    joining them as they were gave "picture.. Decision" and ").;". The risk's own disclaimer
    is left out of its basis because the report ends with one.
    """
    region = reference_words(record.reference_region or "whole_brain")
    sentences = [f"Brain iron (QSM) in deep grey matter, relative to {region}"]
    since = f"since the previous visit ({record.previous_study_date or 'date unknown'})"
    measured = [
        _structure_sentence(structure, block, since)
        for structure in STRUCTURES
        if (block := record.structures.values(structure, BILATERAL)) is not None
        and block.mean_ppb is not None
    ]
    if measured:
        sentences += measured
    else:
        reason = record.qc.segmentation_reason or "no structure could be measured"
        sentences.append(f"Not reportable: {reason}")
    if not record.previous_study_uid:
        sentences.append("No earlier scan of this patient to compare with")
    elif record.comparable is False:
        reason = record.not_comparable_reason or "acquisition differs"
        sentences.append(f"Change since the previous visit not assessed: {reason}")
    risk = record.risk
    if risk is not None:
        sentences.append(f"Progression-risk level: {risk.level}")
        basis = [_clause(reason) for reason in risk.reasons if reason != RISK_DISCLAIMER]
        if basis:
            sentences.append("Basis: " + "; ".join(basis))
    sentences.append(DISCLAIMER)
    return " ".join(_clause(sentence) + "." for sentence in sentences)


def _clause(text: str) -> str:
    """`text` without its closing full stops and spaces, so it can end or join a sentence."""
    return str(text).strip().rstrip(".").rstrip()


def _structure_sentence(structure: str, block: Values, since: str) -> str:
    block = block.rounded()
    name = structure.replace("_", " ").capitalize()
    parts = [f"{name} {block.mean_ppb:.1f} ppb"]
    if block.z is not None:
        words = _RANGE_WORDS.get(str(block.interpretation), "")
        parts.append(f"z {block.z:+.2f}" + (f", {words}" if words else ""))
    if block.change_ppb is not None:
        if block.change_ppb == 0:
            change = f"unchanged {since}"
        else:
            change = f"{block.change_ppb:+.1f} ppb {since}"
        if block.annual_change_ppb_per_year is not None:
            change += f" ({block.annual_change_ppb_per_year:+.1f} ppb/year)"
        parts.append(change)
    return "; ".join(parts)


def risk_assessment(risk: Risk, observations: list[Entry], context: Context) -> Entry:
    """The progression-risk level with its basis: the observations and the stated reasons."""
    identifier = context.keys.identifier("risk-assessment")
    level_code = "risk-" + risk.level.replace(" ", "-")
    if level_code not in PRODUCT_CODES:
        raise ValueError(f"record has an unknown risk level {risk.level!r}")
    prediction: dict[str, Any] = {
        "outcome": product_concept("iron-progression"),
        "qualitativeRisk": product_concept(level_code),
    }
    if risk.reasons:
        prediction["rationale"] = "; ".join(risk.reasons)
    resource = {
        "resourceType": "RiskAssessment",
        "identifier": [identifier],
        "status": context.result_status,
        "code": product_concept("iron-progression"),
        "subject": context.subject,
        "occurrenceDateTime": context.effective,
        "basis": [{"reference": entry.full_url} for entry in observations],
        "prediction": [prediction],
        "note": [{"text": DISCLAIMER}],
    }
    return Entry(context.keys.full_url("risk-assessment"), resource, identifier)


def elevated_flag(risk_entry: Entry, context: Context, active: bool = True) -> Entry:
    """An EHR banner for elevated risk, pointing at the assessment behind it; inactive when
    an amendment no longer finds the risk elevated (the banner sent before comes down)."""
    identifier = context.keys.identifier("flag")
    resource = {
        "resourceType": "Flag",
        "identifier": [identifier],
        "status": "active" if active else "inactive",
        "category": [{"coding": [coding(FLAG_CATEGORY, "clinical", "Clinical")]}],
        "code": product_concept("iron-progression-flag"),
        "subject": context.subject,
        "period": {"start": context.effective},
        "extension": [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/flag-detail",
                "valueReference": {"reference": risk_entry.full_url},
            }
        ],
    }
    return Entry(context.keys.full_url("flag"), resource, identifier)
