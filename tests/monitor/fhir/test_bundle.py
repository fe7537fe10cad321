"""FHIR transaction Bundle content: what an EHR receives for one processed acquisition."""

from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from support.fhir_records import amended_record, baseline_record, bundle_of, elevated_record

from monitor.fhir.bundle import PatientRef, build_bundle, effective_datetime
from monitor.fhir.codes import PRODUCT_CODE_SYSTEM, PRODUCT_CODES, UCUM
from monitor.record import ProcessingRecord
from monitor.settings import FhirSettings

SETTINGS = FhirSettings(timezone="Europe/Berlin")


def bundle_for(record: dict[str, Any], settings: FhirSettings = SETTINGS) -> dict[str, Any]:
    return bundle_of(record, settings)


def resources(bundle: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
    return [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type
    ]


def observation(bundle: dict[str, Any], code: str) -> dict[str, Any]:
    (found,) = [
        o for o in resources(bundle, "Observation") if o["code"]["coding"][0]["code"] == code
    ]
    return found


def component(obs: dict[str, Any], code: str) -> dict[str, Any] | None:
    matches = [c for c in obs.get("component", []) if c["code"]["coding"][0]["code"] == code]
    return matches[0] if matches else None


def test_one_observation_per_structure_and_side_with_record_numbers() -> None:
    record = elevated_record()
    bundle = bundle_for(record)
    assert bundle["type"] == "transaction"
    assert len(resources(bundle, "Observation")) == 4 * 3
    left_gp = record["structures"]["globus_pallidus"]["sides"]["left"]
    obs = observation(bundle, "globus-pallidus-left")
    assert obs["status"] == "final"
    assert obs["category"][0]["coding"][0]["code"] == "imaging"
    assert obs["code"]["coding"][0]["system"] == PRODUCT_CODE_SYSTEM
    assert obs["valueQuantity"] == {
        "value": round(left_gp["mean_ppb"], 3),
        "unit": "ppb",
        "system": UCUM,
        "code": "[ppb]",
    }
    low, high = left_gp["reference_range_ppb"]
    assert obs["referenceRange"][0]["low"]["value"] == pytest.approx(low, abs=1e-3)
    assert obs["referenceRange"][0]["high"]["value"] == pytest.approx(high, abs=1e-3)
    assert obs["interpretation"][0]["coding"][0]["code"] == left_gp["interpretation"] == "H"
    assert component(obs, "z-score")["valueQuantity"]["value"] == pytest.approx(left_gp["z"])
    assert component(obs, "change-since-previous")["valueQuantity"]["value"] == pytest.approx(
        left_gp["change_ppb"]
    )
    rate = component(obs, "annualised-change")["valueQuantity"]
    assert rate["code"] == "[ppb]/a"
    assert rate["value"] == pytest.approx(left_gp["annual_change_ppb_per_year"], abs=1e-3)
    assert obs["effectiveDateTime"] == record["study_datetime"]


def test_csf_referenced_values_also_carry_their_whole_brain_mean() -> None:
    """2024 QSM consensus: values against the whole brain always, any other in addition."""
    record = elevated_record()
    brain_on_csf_scale = -23.4
    record["reference_region"] = record["structures"]["reference"] = "csf"
    record["qc"] = {**record.get("qc", {}), "whole_brain_mean_ppb": brain_on_csf_scale}
    observations = resources(bundle_for(record), "Observation")
    assert len(observations) == 12
    for obs in observations:
        assert obs["method"]["coding"][0]["code"] == "reference-csf"
        brain = component(obs, "mean-whole-brain-reference")["valueQuantity"]
        assert brain["code"] == "[ppb]"
        assert brain["value"] == pytest.approx(
            obs["valueQuantity"]["value"] - brain_on_csf_scale, abs=0.051
        )
    for obs in resources(bundle_for(elevated_record()), "Observation"):  # whole brain already
        assert component(obs, "mean-whole-brain-reference") is None


def test_body_site_is_snomed_structure_with_laterality() -> None:
    bundle = bundle_for(baseline_record())
    expected = {
        "thalamus-right": ("42695009", "24028007"),
        "caudate-left": ("11000004", "7771000"),
        "putamen": ("89278009", "51440002"),
        "globus-pallidus-right": ("14738005", "24028007"),
    }
    for code, (structure, side) in expected.items():
        obs = observation(bundle, code)
        assert obs["bodySite"]["coding"][0]["code"] == structure
        (site,) = obs["contained"]
        assert obs["bodySite"]["extension"][0]["valueReference"]["reference"] == f"#{site['id']}"
        assert site["location"]["coding"][0]["code"] == structure
        assert site["locationQualifier"][0]["coding"][0]["code"] == side
        assert site["patient"] == obs["subject"]


def test_baseline_has_no_change_components_and_no_flag() -> None:
    bundle = bundle_for(baseline_record())
    for obs in resources(bundle, "Observation"):
        codes = {c["code"]["coding"][0]["code"] for c in obs["component"]}
        assert codes == {"z-score", "percentile"}
    assert resources(bundle, "Flag") == []
    (assessment,) = resources(bundle, "RiskAssessment")
    assert assessment["prediction"][0]["qualitativeRisk"]["coding"][0]["code"] == (
        "risk-not-elevated"
    )
    (report,) = resources(bundle, "DiagnosticReport")
    assert "No earlier scan of this patient" in report["conclusion"]
    assert "relative to the whole-brain mean" in report["conclusion"]


def test_elevated_risk_gives_flag_and_assessment_with_basis() -> None:
    record = elevated_record()
    bundle = bundle_for(record)
    full_urls = {e["resource"]["resourceType"]: e["fullUrl"] for e in bundle["entry"]}
    (assessment,) = resources(bundle, "RiskAssessment")
    observation_urls = [
        e["fullUrl"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"
    ]
    assert [b["reference"] for b in assessment["basis"]] == observation_urls
    assert assessment["prediction"][0]["rationale"] == "; ".join(record["risk"]["reasons"])
    (flag,) = resources(bundle, "Flag")
    assert flag["status"] == "active"
    assert flag["extension"][0]["valueReference"]["reference"] == full_urls["RiskAssessment"]
    (report,) = resources(bundle, "DiagnosticReport")
    assert [r["reference"] for r in report["result"]] == observation_urls
    assert "Progression-risk level: elevated" in report["conclusion"]
    assert "not a diagnosis" in report["conclusion"]
    assert "+21.0 ppb since the previous visit (2024-03-05)" in report["conclusion"]


def test_every_entry_is_a_conditional_create_on_its_identifier() -> None:
    bundle = bundle_for(elevated_record())
    for entry in bundle["entry"]:
        identifier = entry["resource"]["identifier"][0]
        request = entry["request"]
        assert request["method"] == "POST"
        assert request["url"] == entry["resource"]["resourceType"]
        assert request["ifNoneExist"] == f"identifier={identifier['system']}|{identifier['value']}"
        assert entry["fullUrl"].startswith("urn:uuid:")
    assert len({e["fullUrl"] for e in bundle["entry"]}) == len(bundle["entry"])
    identifiers = [e["resource"]["identifier"][0]["value"] for e in bundle["entry"]]
    assert len(set(identifiers)) == len(identifiers)


def test_resend_builds_the_identical_bundle_and_other_study_differs() -> None:
    first = json.dumps(bundle_for(elevated_record()), sort_keys=True)
    assert json.dumps(bundle_for(elevated_record()), sort_keys=True) == first
    other = bundle_for(baseline_record())
    assert not {e["fullUrl"] for e in other["entry"]} & {
        e["fullUrl"] for e in json.loads(first)["entry"]
    }


def test_study_and_patient_references() -> None:
    record = elevated_record()
    bundle = bundle_for(record)
    (study,) = resources(bundle, "ImagingStudy")
    study_id = {"system": "urn:dicom:uid", "value": f"urn:oid:{record['study_uid']}"}
    assert study["identifier"] == [study_id]
    assert [s["uid"] for s in study["series"]] == record["series_uids"]
    (patient,) = resources(bundle, "Patient")
    assert patient["identifier"][0]["value"] == record["patient_id"]
    assert patient["gender"] == "female"
    obs = resources(bundle, "Observation")[0]
    assert obs["derivedFrom"][0]["identifier"] == study_id


def test_existing_patient_and_study_are_referenced_not_created() -> None:
    settings = FhirSettings(create_patient=False, create_imaging_study=False)
    record = baseline_record()
    patient = PatientRef(system="urn:oid:1.2.3.4", value="MRN 7", birth_date=date(1961, 2, 3))
    bundle = build_bundle(ProcessingRecord.from_json(record), patient, settings)
    types = {e["resource"]["resourceType"] for e in bundle["entry"]}
    assert not types & {"Patient", "ImagingStudy"}
    obs = resources(bundle, "Observation")[0]
    assert obs["subject"]["reference"] == "Patient?identifier=urn:oid:1.2.3.4|MRN%207"
    assert obs["derivedFrom"][0] == {
        "type": "ImagingStudy",
        "identifier": {"system": "urn:dicom:uid", "value": f"urn:oid:{record['study_uid']}"},
    }


def test_created_patient_carries_birth_date_when_known() -> None:
    record = baseline_record()
    patient = PatientRef(system="urn:oid:1.2.3.4", value="7", birth_date=date(1961, 2, 3), sex="M")
    bundle = build_bundle(ProcessingRecord.from_json(record), patient, SETTINGS)
    (created,) = resources(bundle, "Patient")
    assert created["birthDate"] == "1961-02-03"
    assert created["gender"] == "male"


def test_effective_time_needs_a_zone_or_falls_back_to_the_date() -> None:
    record = baseline_record()
    assert (
        effective_datetime(ProcessingRecord.from_json(record), "Europe/Berlin")
        == "2024-03-05T09:41:07+01:00"
    )
    assert effective_datetime(ProcessingRecord.from_json(record), None) == "2024-03-05"
    record["study_datetime"] = None
    assert effective_datetime(ProcessingRecord.from_json(record), "Europe/Berlin") == "2024-03-05"


def test_missing_values_are_left_out_not_invented() -> None:
    record = baseline_record()
    block = record["structures"]["caudate"]
    block["sides"]["left"].update(z=None, reference_range_ppb=None, interpretation=None)
    block["sides"]["right"]["mean_ppb"] = None
    record["risk"] = None
    bundle = bundle_for(record)
    codes = {o["code"]["coding"][0]["code"] for o in resources(bundle, "Observation")}
    assert "caudate-right" not in codes and len(codes) == 11
    left = observation(bundle, "caudate-left")
    assert "referenceRange" not in left and "interpretation" not in left
    assert component(left, "z-score") is None
    assert resources(bundle, "RiskAssessment") == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"error": "ValueError: no phase"}, "failed processing"),
        ({"study_uid": None}, "no study_uid"),
        ({"structures": {"reference": "whole_brain"}}, "no structure measurements"),
        ({"study_datetime": None, "study_date": None}, "neither study_datetime"),
        ({"risk": {"level": "high", "reasons": []}}, "unknown risk level 'high'"),
    ],
)
def test_records_without_results_are_refused(change: dict[str, Any], message: str) -> None:
    record = copy.deepcopy(baseline_record())
    record.update(change)
    with pytest.raises(ValueError, match=message):
        bundle_for(record)


def test_patient_ref_needs_a_patient_id() -> None:
    record = baseline_record()
    record["patient_id"] = ""
    with pytest.raises(ValueError, match="no patient_id"):
        PatientRef.from_record(ProcessingRecord.from_json(record), SETTINGS)


def test_docs_list_every_product_code() -> None:
    """The code system is a public contract: docs/fhir.md must list exactly what we send."""
    text = (Path(__file__).parents[3] / "docs" / "fhir.md").read_text(encoding="utf-8")
    assert PRODUCT_CODE_SYSTEM in text
    for code, display in PRODUCT_CODES.items():
        assert f"| `{code}` | {display} |" in text


def test_amended_results_are_conditional_updates_and_identity_stays_create() -> None:
    bundle = bundle_for(amended_record())
    requests = {e["resource"]["resourceType"]: e["request"] for e in bundle["entry"]}
    for resource_type in ("Patient", "ImagingStudy"):
        assert requests[resource_type]["method"] == "POST"
        assert requests[resource_type]["ifNoneExist"].startswith("identifier=")
    for resource_type in ("Observation", "DiagnosticReport", "RiskAssessment", "Flag"):
        assert requests[resource_type]["method"] == "PUT"
        assert requests[resource_type]["url"].startswith(f"{resource_type}?identifier=")
    assert {o["status"] for o in resources(bundle, "Observation")} == {"amended"}
    (flag,) = resources(bundle, "Flag")
    assert flag["status"] == "inactive"
    never_raised = amended_record()
    never_raised["superseded_risk_level"] = "not elevated"
    assert resources(bundle_for(never_raised), "Flag") == []
    first = bundle_for(elevated_record())
    assert {e["request"]["method"] for e in first["entry"]} == {"POST"}


def test_every_observation_notes_the_consensus_provenance_and_its_comparison() -> None:
    record = elevated_record()
    bundle = bundle_for(record)
    for observation in resources(bundle, "Observation"):
        comparison, provenance = (note["text"] for note in observation["note"])
        assert comparison == (
            "Changes are computed against the previous visit of 2024-03-05 "
            f"(study {record['previous_study_uid']})."
        )
        assert provenance.startswith("Provenance: field strength 3.0 T; echo times 4.00, 9.50")
        assert "TV-ADMM dipole inversion" in provenance
        assert provenance.endswith("reference region: whole-brain mean.")
    (report,) = resources(bundle, "DiagnosticReport")
    assert "+21.0 ppb since the previous visit (2024-03-05)" in report["conclusion"]


def test_patient_carries_the_birth_date_from_the_header() -> None:
    (patient,) = resources(bundle_for(baseline_record()), "Patient")
    assert patient["birthDate"] == "1960-11-23"
