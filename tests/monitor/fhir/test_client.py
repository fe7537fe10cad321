"""Delivering the Bundle to a FHIR server: transaction semantics, resend, bearer and SMART."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from support.fhir_records import amended_record, baseline_record, bundle_of, elevated_record
from support.fhir_server import FhirTestServer

from monitor.fhir.client import BearerAuth, FhirClient, FhirEndpoint
from monitor.fhir.errors import FhirDeliveryError
from monitor.fhir.smart import SmartBackendAuth
from monitor.settings import FhirSettings

SETTINGS = FhirSettings(timezone="Europe/Berlin")
TOKEN = "test-token-1"


def bundle_for(record: dict, settings: FhirSettings = SETTINGS) -> dict:
    return bundle_of(record, settings)


@pytest.fixture
def server() -> Iterator[FhirTestServer]:
    with FhirTestServer(bearer_token=TOKEN) as running:
        yield running


def deliver(server: FhirTestServer, bundle: dict, token: str = TOKEN):
    endpoint = FhirEndpoint(server.base_url, BearerAuth(token), timeout_s=10.0)
    with FhirClient(endpoint) as client:
        return client.transaction(bundle)


def test_transaction_creates_every_resource_and_links_them(server: FhirTestServer) -> None:
    bundle = bundle_for(elevated_record())
    result = deliver(server, bundle)
    assert result.created == len(bundle["entry"]) == server.count()
    (request,) = server.transactions()
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["content-type"] == "application/fhir+json"
    assert request.json() == bundle
    (patient,) = server.all("Patient")
    (study,) = server.all("ImagingStudy")
    (flag,) = server.all("Flag")
    (assessment,) = server.all("RiskAssessment")
    observations = server.all("Observation")
    assert len(observations) == 12
    for observation in observations:
        assert observation["subject"]["reference"] == f"Patient/{patient['id']}"
        assert observation["derivedFrom"][0]["reference"] == f"ImagingStudy/{study['id']}"
        assert observation["contained"][0]["patient"]["reference"] == f"Patient/{patient['id']}"
    assert flag["extension"][0]["valueReference"]["reference"] == (
        f"RiskAssessment/{assessment['id']}"
    )


def test_resend_creates_nothing_new(server: FhirTestServer) -> None:
    bundle = bundle_for(elevated_record())
    deliver(server, bundle)
    stored = {t: server.all(t) for t in server.resources}
    again = deliver(server, bundle_for(elevated_record()))
    assert again.created == 0
    assert again.existing == len(bundle["entry"])
    assert {t: server.all(t) for t in server.resources} == stored
    assert len(server.transactions()) == 2


def test_follow_up_study_reuses_the_patient_and_adds_results(server: FhirTestServer) -> None:
    deliver(server, bundle_for(baseline_record()))
    follow_up = deliver(server, bundle_for(elevated_record()))
    assert server.count("Patient") == 1
    assert follow_up.existing == 1  # the Patient
    assert server.count("Observation") == 24
    assert server.count("Flag") == 1


def test_existing_patient_is_referenced_conditionally(server: FhirTestServer) -> None:
    deliver(server, bundle_for(baseline_record()))
    (patient,) = server.all("Patient")
    referenced = FhirSettings(create_patient=False, create_imaging_study=False)
    deliver(server, bundle_for(elevated_record(), referenced))
    follow_up = [
        o for o in server.all("Observation") if "1234567999" in o["identifier"][0]["value"]
    ]
    assert len(follow_up) == 12
    assert {o["subject"]["reference"] for o in follow_up} == {f"Patient/{patient['id']}"}


def test_patient_id_with_search_syntax_characters_is_matched(server: FhirTestServer) -> None:
    """A Patient ID like ``A|7,B`` must be escaped in searches, or a resend duplicates."""
    baseline, follow_up = baseline_record(), elevated_record()
    baseline["patient_id"] = follow_up["patient_id"] = "MRN|7, A$\\b"
    deliver(server, bundle_for(baseline))
    assert deliver(server, bundle_for(baseline)).created == 0
    referenced = FhirSettings(create_patient=False)
    deliver(server, bundle_for(follow_up, referenced))
    (patient,) = server.all("Patient")
    assert patient["identifier"][0]["value"] == "MRN|7, A$\\b"
    subjects = {o["subject"]["reference"] for o in server.all("Observation")}
    assert subjects == {f"Patient/{patient['id']}"}


def test_unknown_patient_is_refused_without_patient_data_in_the_error(
    server: FhirTestServer,
) -> None:
    record = elevated_record()
    referenced = FhirSettings(create_patient=False)
    with pytest.raises(FhirDeliveryError) as caught:
        deliver(server, bundle_for(record, referenced))
    message = str(caught.value)
    assert caught.value.status_code == 412 and not caught.value.retryable
    assert "412" in message and "[redacted]" in message
    assert record["patient_id"] not in message
    assert server.count() == 0  # all or nothing


def test_wrong_bearer_token_is_a_clear_permanent_error(server: FhirTestServer) -> None:
    with pytest.raises(FhirDeliveryError, match=r"refused the transaction \(401\)") as caught:
        deliver(server, bundle_for(baseline_record()), token="wrong")
    assert not caught.value.retryable
    assert server.count() == 0


def test_outage_and_unreachable_server_are_retryable(server: FhirTestServer) -> None:
    server.fail_next(503)
    with pytest.raises(FhirDeliveryError, match=r"\(503\)") as caught:
        deliver(server, bundle_for(baseline_record()))
    assert caught.value.retryable
    server.stop()
    with pytest.raises(FhirDeliveryError, match="cannot reach FHIR server") as caught:
        deliver(server, bundle_for(baseline_record()))
    assert caught.value.retryable
    server.start()  # same port, same store: the destination is back
    assert deliver(server, bundle_for(baseline_record())).created == server.count() > 0


def test_slow_server_times_out_as_a_retryable_error(server: FhirTestServer) -> None:
    server.delay_next(1.5)
    endpoint = FhirEndpoint(server.base_url, BearerAuth(TOKEN), timeout_s=0.3)
    with (
        FhirClient(endpoint) as client,
        pytest.raises(FhirDeliveryError, match="did not answer within 0.3 s") as caught,
    ):
        client.transaction(bundle_for(baseline_record()))
    assert caught.value.retryable


def _write_key(tmp_path: Path, algorithm: str) -> tuple[Path, bytes]:
    if algorithm == "RS384":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = ec.generate_private_key(ec.SECP384R1())
    path = tmp_path / f"{algorithm}.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return path, public


@pytest.mark.parametrize("algorithm", ["RS384", "ES384"])
def test_smart_backend_services_token_is_fetched_once_and_used(
    tmp_path: Path, algorithm: str
) -> None:
    key_file, public_key = _write_key(tmp_path, algorithm)
    with FhirTestServer(smart_clients={"qsm-monitor": public_key}) as server:
        auth = SmartBackendAuth(
            token_url=server.token_url,
            client_id="qsm-monitor",
            private_key_file=key_file,
            key_id="k1",
            algorithm=algorithm,
        )
        with FhirClient(FhirEndpoint(server.base_url, auth, timeout_s=10.0)) as client:
            client.transaction(bundle_for(baseline_record()))
            client.transaction(bundle_for(elevated_record()))
            assert len(server.issued_tokens) == 1  # cached between transactions
            server.issued_tokens.clear()  # revoked: the client fetches a new one once
            assert client.transaction(bundle_for(elevated_record())).created == 0
        assert len(server.issued_tokens) == 1
        assert server.granted_scopes[0] == auth.scope
        assert "system/Observation.cs" in auth.scope
        token_requests = [r for r in server.requests if r.path == "/auth/token"]
        assert len(token_requests) == 2
        assert server.count("Observation") == 24


def test_smart_with_an_unregistered_key_is_refused(tmp_path: Path) -> None:
    key_file, _ = _write_key(tmp_path, "ES384")
    (tmp_path / "other").mkdir()
    _, other_public = _write_key(tmp_path / "other", "ES384")
    with FhirTestServer(smart_clients={"qsm-monitor": other_public}) as server:
        auth = SmartBackendAuth(server.token_url, "qsm-monitor", key_file, algorithm="ES384")
        with (
            FhirClient(FhirEndpoint(server.base_url, auth)) as client,
            pytest.raises(FhirDeliveryError, match="SMART token request refused") as caught,
        ):
            client.transaction(bundle_for(baseline_record()))
        assert not caught.value.retryable
        assert server.transactions() == []


def test_missing_private_key_file_is_a_clear_error(tmp_path: Path) -> None:
    auth = SmartBackendAuth("http://127.0.0.1:9/token", "qsm", tmp_path / "absent.pem")
    with (
        FhirClient(FhirEndpoint("http://127.0.0.1:9/fhir", auth)) as client,
        pytest.raises(FhirDeliveryError, match="cannot read the SMART private key file"),
    ):
        client.transaction(bundle_for(baseline_record()))


def test_amendment_replaces_results_in_place_and_takes_the_flag_down(
    server: FhirTestServer,
) -> None:
    deliver(server, bundle_for(elevated_record()))
    before = {t: {r["id"] for r in server.all(t)} for t in server.resources}
    (flag,) = server.all("Flag")
    assert flag["status"] == "active"

    amended = bundle_for(amended_record())
    result = deliver(server, amended)

    assert result.created == 0 and result.existing == len(amended["entry"])
    assert {t: {r["id"] for r in server.all(t)} for t in server.resources} == before
    (flag,) = server.all("Flag")
    assert flag["status"] == "inactive" and flag["meta"]["versionId"] == "2"
    (assessment,) = server.all("RiskAssessment")
    assert assessment["status"] == "amended"
    risk_code = assessment["prediction"][0]["qualitativeRisk"]["coding"][0]["code"]
    assert risk_code == "risk-not-elevated"
    for observation in server.all("Observation"):
        assert observation["status"] == "amended"
        assert observation["subject"]["reference"].startswith("Patient/")  # links resolved
    (patient,) = server.all("Patient")
    assert patient["meta"]["versionId"] == "1"  # identity resources are never rewritten

    stored = {t: server.all(t) for t in server.resources}
    again = deliver(server, bundle_for(amended_record()))  # a resend of the amendment
    assert again.created == 0
    assert {t: {r["id"] for r in server.all(t)} for t in server.resources} == before
    assert server.all("Flag")[0]["status"] == stored["Flag"][0]["status"]
