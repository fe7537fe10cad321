"""HTTP deliveries: the FHIR transaction Bundle to a FHIR server, the alert JSON to a webhook.

Both POST a file the emit step already wrote, so what is delivered is exactly what was
recorded in the output folder (and what a folder destination receives).
"""

from __future__ import annotations

import json

import httpx

from dicom_node.sender import DeliveryError, DeliveryItem
from monitor.settings import DestinationSettings


def post_output(item: DeliveryItem, destination: DestinationSettings) -> None:
    (path,) = item.files()
    try:
        content = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise DeliveryError(f"output {item.output!r} is not readable JSON: {exc}") from exc
    if destination.kind == "webhook":
        post_webhook(content, destination)
    else:
        raise DeliveryError(f"destination kind {destination.kind!r} is not supported yet")


def bearer_headers(destination: DestinationSettings) -> dict[str, str]:
    token = destination.auth.bearer_token
    return {} if token is None else {"Authorization": f"Bearer {token.get_secret_value()}"}


def post_webhook(alert: dict[str, object], destination: DestinationSettings) -> None:
    """POST the alert; any 2xx is delivered. ``Idempotency-Key`` lets a receiver drop the
    copy a resend (or a retry after a lost response) brings."""
    assert destination.url is not None  # guaranteed by DestinationSettings validation
    headers = {**bearer_headers(destination), "Idempotency-Key": str(alert.get("alert_id", ""))}
    try:
        response = httpx.post(
            destination.url, json=alert, headers=headers, timeout=destination.timeout_s
        )
    except httpx.HTTPError as exc:
        raise DeliveryError(f"webhook {destination.name!r} unreachable: {exc}") from exc
    if not response.is_success:
        raise DeliveryError(f"webhook {destination.name!r} answered HTTP {response.status_code}")
