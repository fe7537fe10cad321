"""Every FHIR resource we produce passes an independent R4 validator
(tests/support/fhir_validator)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from support.fhir_records import amended_record, baseline_record, bundle_of, elevated_record
from support.fhir_validation import install_validator, problems, validate

from monitor.fhir.codes import code_system
from monitor.settings import FhirSettings

PRODUCED_TYPES = {
    "CodeSystem",
    "Bundle",
    "Patient",
    "ImagingStudy",
    "Observation",
    "DiagnosticReport",
    "RiskAssessment",
    "Flag",
}


@pytest.fixture(scope="module")
def validator_dir() -> Path:
    return install_validator()


def bundles() -> list[dict]:
    created = FhirSettings(timezone="Europe/Berlin")
    referenced = FhirSettings(create_patient=False, create_imaging_study=False)
    return [
        bundle_of(record, settings)
        for settings in (created, referenced)
        for record in (baseline_record(), elevated_record())
    ]


@pytest.mark.slow
def test_all_produced_resources_validate_without_errors_or_warnings(validator_dir: Path) -> None:
    result = validate([*bundles(), code_system()], validator_dir)
    assert set(result["checked"]) == PRODUCED_TYPES
    assert result["checked"]["Observation"] == 4 * 12
    assert problems(result) == []


@pytest.mark.slow
def test_validator_catches_bad_codes_units_and_times(validator_dir: Path) -> None:
    """The validator is only evidence if it rejects what is wrong in exactly these places."""
    bundle = bundles()[1]
    broken = copy.deepcopy(bundle)
    observation = broken["entry"][2]["resource"]
    observation["status"] = "done"  # required binding observation-status
    observation["valueQuantity"]["code"] = "ppb"  # not UCUM ([ppb] is)
    observation["effectiveDateTime"] = "2025-09-10T14:02:55"  # a time needs a zone
    broken["entry"][-1]["resource"]["subject"] = {"reference": broken["entry"][1]["fullUrl"]}
    found = "\n".join(problems(validate([broken], validator_dir)))
    assert "Observation.status" in found and "observation-status" in found
    assert "invalid UCUM code ppb" in found
    assert "invalid dateTime" in found
    assert "Flag.subject" in found and 'got "ImagingStudy"' in found


@pytest.mark.slow
def test_amended_bundle_validates(validator_dir: Path) -> None:
    settings = FhirSettings(timezone="Europe/Berlin")
    record = amended_record()
    bundle = bundle_of(record, settings)
    result = validate([bundle], validator_dir)
    assert result["checked"]["Flag"] == 1 and result["checked"]["Observation"] == 12
    assert problems(result) == []
