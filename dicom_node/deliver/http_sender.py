"""HTTP deliveries: the FHIR transaction Bundle to a FHIR server, the alert JSON to a webhook.

Both POST a file the emit step already wrote, so what is delivered is exactly what was
recorded in the output folder (and what a folder destination receives). A client is made per
delivery: one Bundle per acquisition is a handful a day, so caching SMART tokens between
deliveries would save nothing worth the shared state.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from dicom_node.deliver.items import DeliveryError, DeliveryItem
from monitor.fhir.client import BearerAuth, FhirClient, FhirEndpoint
from monitor.fhir.errors import FhirDeliveryError
from monitor.fhir.smart import DEFAULT_SCOPE, SmartBackendAuth
from monitor.settings import DestinationSettings

RETRYABLE_HTTP = {408, 429}
"""Besides 5xx: timeout and throttling, which a later attempt can get past."""


def post_output(item: DeliveryItem, destination: DestinationSettings) -> None:
    (path,) = item.files()
    try:
        content = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise DeliveryError(f"output {item.output!r} is not readable JSON: {exc}") from exc
    if destination.kind == "webhook":
        post_webhook(content, destination)
    else:
        post_fhir_transaction(content, destination)


def fhir_endpoint(destination: DestinationSettings) -> FhirEndpoint:
    """Map a `fhir` destination's settings to the FHIR client's endpoint."""
    assert destination.base_url is not None  # guaranteed by DestinationSettings validation
    auth = destination.auth
    credentials: BearerAuth | SmartBackendAuth | None = None
    if auth.bearer_token is not None:
        credentials = BearerAuth(auth.bearer_token.get_secret_value())
    elif auth.token_url and auth.client_id and auth.private_key_file:
        credentials = SmartBackendAuth(
            token_url=auth.token_url,
            client_id=auth.client_id,
            private_key_file=auth.private_key_file,
            key_id=auth.key_id,
            algorithm=auth.algorithm,
            scope=auth.scope or DEFAULT_SCOPE,
        )
    return FhirEndpoint(
        destination.base_url, credentials, destination.timeout_s, _verify(destination)
    )


def post_fhir_transaction(bundle: dict[str, Any], destination: DestinationSettings) -> None:
    """Conditional creates make a resend create nothing: the server answers 200 per entry."""
    try:
        with FhirClient(fhir_endpoint(destination)) as client:
            client.transaction(bundle)
    except FhirDeliveryError as exc:
        raise DeliveryError(f"{destination.name!r}: {exc}", permanent=not exc.retryable) from exc


def post_webhook(alert: dict[str, Any], destination: DestinationSettings) -> None:
    """POST the alert; any 2xx is delivered. ``Idempotency-Key`` lets a receiver drop the
    copy a resend (or a retry after a lost response) brings."""
    assert destination.url is not None  # guaranteed by DestinationSettings validation
    headers = {"Idempotency-Key": str(alert.get("alert_id", ""))}
    token = destination.auth.bearer_token
    if token is not None:
        headers["Authorization"] = f"Bearer {token.get_secret_value()}"
    try:
        with httpx.Client(timeout=destination.timeout_s, verify=_verify(destination)) as http:
            response = http.post(destination.url, json=alert, headers=headers)
    except httpx.HTTPError as exc:
        raise DeliveryError(
            f"webhook {destination.name!r} unreachable: {type(exc).__name__}"
        ) from exc
    if not response.is_success:
        status = response.status_code
        raise DeliveryError(
            f"webhook {destination.name!r} answered HTTP {status}",
            permanent=status < 500 and status not in RETRYABLE_HTTP,
        )


def _verify(destination: DestinationSettings) -> bool | str:
    return True if destination.ca_file is None else str(destination.ca_file)
