"""FHIR destinations through the outbox: the emitted Bundle reaches the recording FHIR test
endpoint, a resend creates nothing new, an outage is retried and a refusal dead-letters."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from support.delivery_helpers import delivery_settings, drain, make_outbox
from support.fhir_records import baseline_record, bundle_of, elevated_record
from support.fhir_server import FhirTestServer

from dicom_node.deliver.outbox import Outbox
from dicom_node.outputs.emit import write_json
from dicom_node.queue.leasing import WorkState
from dicom_node.queue.results import add_result_once
from monitor.settings import Settings

TOKEN = "delivery-token"


@pytest.fixture
def server() -> Iterator[FhirTestServer]:
    with FhirTestServer(bearer_token=TOKEN) as running:
        yield running


def ehr_settings(tmp_path: Path, server: FhirTestServer, token: str = TOKEN) -> Settings:
    ehr = {"name": "ehr", "kind": "fhir", "base_url": server.base_url,
           "auth": {"bearer_token": token}, "timeout_s": 5.0}  # fmt: skip
    return delivery_settings(tmp_path, [ehr])


def emit_bundle(outbox: Outbox, record: dict[str, Any], folder: Path) -> None:
    """What the emit step and the worker do for one record: write the Bundle, store the
    result with its outputs, queue the deliveries."""
    fhir = outbox.settings.fhir
    bundle = bundle_of(record, fhir)
    outputs = {"fhir_bundle": write_json(bundle, folder / "fhir-bundle.json")}
    with outbox.sessions() as session:
        stored = {**record, "outputs": {n: str(p) for n, p in outputs.items()}}
        add_result_once(session, record["idempotency_key"], record["study_uid"], stored)
        outbox.add(session, record["idempotency_key"], record["study_uid"], outputs)
        session.commit()


def test_bundle_delivered_once_and_resend_creates_nothing(
    tmp_path: Path, server: FhirTestServer
) -> None:
    outbox = make_outbox(ehr_settings(tmp_path, server))
    record = elevated_record()
    emit_bundle(outbox, record, tmp_path / "acq1")
    drain(outbox)
    assert outbox.counts()[WorkState.DONE] == 1
    (sent,) = server.transactions()
    assert {k.lower(): v for k, v in sent.headers.items()}["authorization"] == f"Bearer {TOKEN}"
    created = server.count()
    assert created == len(sent.json()["entry"])
    assert server.count("Flag") == 1  # risk elevated
    stored = {kind: server.all(kind) for kind in server.resources}

    assert outbox.requeue_study(record["study_uid"]) == 1
    drain(outbox)
    assert len(server.transactions()) == 2
    assert {kind: server.all(kind) for kind in server.resources} == stored


def test_fhir_outage_is_retried_until_the_server_is_back(
    tmp_path: Path, server: FhirTestServer
) -> None:
    outbox = make_outbox(ehr_settings(tmp_path, server))
    server.stop()
    emit_bundle(outbox, baseline_record(), tmp_path / "acq1")
    assert outbox.deliver_next("d")
    (row,) = outbox.rows()
    assert row.state == WorkState.PENDING
    assert "cannot reach FHIR server" in (row.last_error or "")
    server.start()
    drain(outbox)
    assert outbox.counts()[WorkState.DONE] == 1
    assert server.count("Observation") > 0


def test_refused_credentials_dead_letter_at_once(tmp_path: Path, server: FhirTestServer) -> None:
    outbox = make_outbox(ehr_settings(tmp_path, server, token="expired"))
    record = baseline_record()
    emit_bundle(outbox, record, tmp_path / "acq1")
    drain(outbox)
    (dead,) = outbox.dead_letters()
    assert dead.attempts == 1  # retrying cannot fix a refused token
    assert "(401)" in (dead.last_error or "")
    assert record["patient_id"] not in (dead.last_error or "")
    assert server.count() == 0


def test_smart_backend_services_settings_reach_the_server(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    key_file = tmp_path / "client.pem"
    key_file.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    public = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    with FhirTestServer(smart_clients={"qsm-node": public}) as server:
        smart = {"token_url": server.token_url, "client_id": "qsm-node",
                 "private_key_file": key_file, "algorithm": "ES384"}  # fmt: skip
        ehr = {"name": "ehr", "kind": "fhir", "base_url": server.base_url, "auth": smart}
        outbox = make_outbox(delivery_settings(tmp_path, [ehr]))
        emit_bundle(outbox, baseline_record(), tmp_path / "acq1")
        drain(outbox)
        assert outbox.counts()[WorkState.DONE] == 1
        assert len(server.issued_tokens) == 1
        assert "system/Observation.cs" in server.granted_scopes[0]
        assert server.count("Observation") > 0
