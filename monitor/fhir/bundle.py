"""The transaction Bundle an EHR receives for one processed acquisition.

Every entry is a conditional create (POST with ``ifNoneExist`` on its business identifier), so
delivering the same bundle twice creates nothing the second time; the server resolves our
``urn:uuid`` references to the resources it created or found.

An amended record (``amendment`` >= 1: re-assessed after its results were sent) turns the
result resources into conditional updates (PUT ``Type?identifier=...``) with status
"amended": the EHR's resources are replaced in place, still never duplicated, and a Flag
raised by the superseded result is set inactive when the risk is no longer elevated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fhir.resources.R4B.bundle import Bundle

from monitor import __version__
from monitor.fhir.codes import DCM_MR, DICOM_DCM, reference_words
from monitor.fhir.ids import ResultKeys, identifier_query, study_identifier
from monitor.fhir.observations import Context, Entry, structure_observations
from monitor.fhir.report import diagnostic_report, elevated_flag, risk_assessment
from monitor.record import Norms, ProcessingRecord
from monitor.settings import FhirSettings

_GENDERS = {"F": "female", "M": "male", "O": "other"}


@dataclass(frozen=True)
class PatientRef:
    """Who the results are about, as the EHR knows them (identifier), plus optional
    demographics used only when the Patient has to be created."""

    system: str
    value: str
    birth_date: date | None = None
    sex: str | None = None
    """DICOM sex code F, M or O."""

    @classmethod
    def from_record(cls, record: ProcessingRecord, settings: FhirSettings) -> PatientRef:
        """The DICOM Patient ID under the site's identifier system (settings.fhir)."""
        if not record.patient_id:
            raise ValueError("record has no patient_id; FHIR resources need a patient")
        return cls(
            system=settings.patient_identifier_system,
            value=record.patient_id,
            birth_date=date.fromisoformat(record.birth_date) if record.birth_date else None,
            sex=record.sex,
        )

    @property
    def identifier(self) -> dict[str, Any]:
        return {"system": self.system, "value": self.value}


def build_bundle(
    record: ProcessingRecord, patient: PatientRef, settings: FhirSettings
) -> dict[str, Any]:
    """Transaction Bundle (FHIR R4 JSON) with every result resource of ``record``.

    Raises ValueError for a record that holds no results (failed processing, no study).
    """
    if record.error:
        raise ValueError("record is a failed processing result; there is nothing to report")
    keys = ResultKeys(record.study_uid or "", record.idempotency_key)
    effective = effective_datetime(record, settings.timezone)
    patient_entry, subject = _patient(patient, keys, settings)
    study_entry, study = _imaging_study(record, subject, effective, keys, settings)
    entries = [entry for entry in (patient_entry, study_entry) if entry is not None]
    context = Context(
        keys=keys,
        subject=subject,
        imaging_study=study,
        effective=effective,
        reference_region=_reference_region(record),
        method_text=_method_text(record),
        notes=_notes(record),
        side_notes=tuple(filter(None, [record.qc.left_right_caution])),
        norms_text=_norms_text(record.norms),
        amended=bool(record.amendment),
    )
    observations = structure_observations(record, context)
    if not observations:
        raise ValueError("record has no structure measurements to report")
    results = [*observations, diagnostic_report(record, observations, context)]
    risk = record.risk
    if risk is not None:
        assessment = risk_assessment(risk, observations, context)
        results.append(assessment)
        if risk.level == "elevated":
            results.append(elevated_flag(assessment, context))
        elif context.amended and record.superseded_risk_level == "elevated":
            results.append(elevated_flag(assessment, context, active=False))
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [_entry(e) for e in entries]
        + [_entry(e, update=context.amended) for e in results],
    }
    # Round trip through the R4B models: a structural mistake fails here, not at the EHR.
    return json.loads(Bundle.model_validate(bundle).model_dump_json())


def effective_datetime(record: ProcessingRecord, timezone: str | None) -> str:
    """Scan time as a FHIR dateTime; FHIR needs a zone with a time, so a naive DICOM time gets
    the site's zone, or falls back to the date alone when none is configured."""
    text = record.study_datetime
    if text:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None and timezone:
            moment = moment.replace(tzinfo=ZoneInfo(timezone))
        if moment.tzinfo is not None:
            return moment.isoformat()
        return moment.date().isoformat()
    if record.study_date:
        return datetime.strptime(record.study_date, "%Y%m%d").date().isoformat()
    raise ValueError("record has neither study_datetime nor study_date")


def _entry(entry: Entry, update: bool = False) -> dict[str, Any]:
    """Conditional create, or with `update` a conditional update on the same identifier."""
    resource_type = entry.resource["resourceType"]
    query = identifier_query(entry.identifier)
    request = (
        {"method": "PUT", "url": f"{resource_type}?{query}"}
        if update
        else {"method": "POST", "url": resource_type, "ifNoneExist": query}
    )
    return {"fullUrl": entry.full_url, "resource": entry.resource, "request": request}


def _patient(
    patient: PatientRef, keys: ResultKeys, settings: FhirSettings
) -> tuple[Entry | None, dict[str, Any]]:
    """Conditionally create the Patient, or (the EHR owns the patient index) point at it with
    a conditional reference the server resolves inside the transaction."""
    if not settings.create_patient:
        return None, {"reference": f"Patient?{identifier_query(patient.identifier)}"}
    resource: dict[str, Any] = {"resourceType": "Patient", "identifier": [patient.identifier]}
    if patient.sex in _GENDERS:
        resource["gender"] = _GENDERS[patient.sex]
    if patient.birth_date is not None:
        resource["birthDate"] = patient.birth_date.isoformat()
    entry = Entry(keys.full_url("patient"), resource, patient.identifier)
    return entry, {"reference": entry.full_url}


def _imaging_study(
    record: ProcessingRecord,
    subject: dict[str, Any],
    effective: str,
    keys: ResultKeys,
    settings: FhirSettings,
) -> tuple[Entry | None, dict[str, Any]]:
    """The source study: created conditionally so the link resolves even in an EHR that has
    no ImagingStudy yet, or referenced only logically by its Study Instance UID."""
    identifier = study_identifier(keys.study_uid)
    if not settings.create_imaging_study:
        return None, {"type": "ImagingStudy", "identifier": identifier}
    series = [
        {
            "uid": uid,
            "modality": {"system": DICOM_DCM, "code": DCM_MR, "display": "Magnetic Resonance"},
        }
        for uid in record.series_uids
    ]
    resource: dict[str, Any] = {
        "resourceType": "ImagingStudy",
        "identifier": [identifier],
        "status": "available",
        "subject": subject,
        "started": effective,
    }
    if series:
        resource["numberOfSeries"] = len(series)
        resource["series"] = series
    entry = Entry(keys.full_url("imaging-study"), resource, identifier)
    return entry, {"reference": entry.full_url, "type": "ImagingStudy", "identifier": identifier}


def _method_text(record: ProcessingRecord) -> str:
    version = record.pipeline_version or __version__
    region = reference_words(_reference_region(record))
    return f"Quantitative susceptibility mapping (qsm-monitor {version}), relative to {region}"


def _notes(record: ProcessingRecord) -> tuple[str, ...]:
    """What every value carries besides its number: which visits changes are against, and
    the acquisition and processing provenance."""
    provenance = record.qc.provenance
    notes = [] if record.comparison_text is None else [record.comparison_text]
    if provenance is not None:
        notes.append("Provenance: " + "; ".join(provenance.lines()) + ".")
    return tuple(notes)


def _reference_region(record: ProcessingRecord) -> str:
    """The tracking step's reference region; whole brain for records that lack it."""
    return record.reference_region or "whole_brain"


def _norms_text(norms: Norms | None) -> str | None:
    if norms is None or not norms.name:
        return None
    return f"Normative range for age and sex ({norms.name}, {norms.source or 'default'})"
