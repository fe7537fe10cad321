"""POST a transaction Bundle to a FHIR server, with bearer or SMART Backend Services auth.

Errors come back as one FhirDeliveryError line: status code and the server's OperationOutcome,
with every identifier and date from the Bundle blanked out, because servers often echo the
offending value and these messages end up in logs and in the outbox's ``last_error``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from monitor.fhir.errors import FhirDeliveryError
from monitor.fhir.ids import unescape_search
from monitor.fhir.smart import SmartBackendAuth, SmartTokenSource

logger = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
_REDACTED = "[redacted]"
_MAX_OUTCOME_CHARS = 300


@dataclass(frozen=True)
class BearerAuth:
    """A static access token issued out of band by the EHR's administrators."""

    token: str = field(repr=False)


@dataclass(frozen=True)
class FhirEndpoint:
    """Where and how to deliver; the delivery layer maps its destination settings to this."""

    base_url: str
    auth: BearerAuth | SmartBackendAuth | None = None
    timeout_s: float = 30.0
    verify_tls: bool | str = True
    """False only for tests; a path selects a CA bundle for a hospital's own certificate."""


@dataclass(frozen=True)
class TransactionResult:
    """What the server did with each entry, in Bundle order ("201 Created", "200 OK", ...)."""

    statuses: tuple[str, ...]
    locations: tuple[str, ...]

    @property
    def created(self) -> int:
        return sum(status.startswith("201") for status in self.statuses)

    @property
    def existing(self) -> int:
        """Entries a conditional create matched to a resource the server already had."""
        return sum(status.startswith("200") for status in self.statuses)


class FhirClient:
    """One connection pool and token cache per destination; use as a context manager."""

    def __init__(self, endpoint: FhirEndpoint) -> None:
        self.endpoint = endpoint
        self._http = httpx.Client(timeout=endpoint.timeout_s, verify=endpoint.verify_tls)
        self._tokens = (
            SmartTokenSource(endpoint.auth) if isinstance(endpoint.auth, SmartBackendAuth) else None
        )

    def __enter__(self) -> FhirClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def transaction(self, bundle: dict[str, Any]) -> TransactionResult:
        """Deliver the Bundle as one atomic transaction; raises FhirDeliveryError."""
        if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "transaction":
            raise FhirDeliveryError("not a transaction Bundle", retryable=False)
        started = time.monotonic()
        response = self._post(bundle)
        if response.status_code == 401 and self._tokens is not None:
            self._tokens.invalidate()  # revoked or expired early: one fresh token, one retry
            response = self._post(bundle)
        if not response.is_success:
            raise _refusal(response, _sensitive_strings(bundle))
        result = _transaction_result(response, len(bundle.get("entry", [])))
        logger.info(
            "fhir transaction delivered: %d entries, %d created, %d existing, %.1f s",
            len(result.statuses),
            result.created,
            result.existing,
            time.monotonic() - started,
        )
        return result

    def _post(self, bundle: dict[str, Any]) -> httpx.Response:
        headers = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}
        if isinstance(self.endpoint.auth, BearerAuth):
            headers["Authorization"] = f"Bearer {self.endpoint.auth.token}"
        elif self._tokens is not None:
            headers["Authorization"] = f"Bearer {self._tokens.token(self._http)}"
        try:
            return self._http.post(self.endpoint.base_url.rstrip("/"), json=bundle, headers=headers)
        except httpx.TimeoutException as exc:
            raise FhirDeliveryError(
                f"FHIR server did not answer within {self.endpoint.timeout_s:g} s"
            ) from exc
        except httpx.TransportError as exc:
            host = urlsplit(self.endpoint.base_url).netloc
            raise FhirDeliveryError(
                f"cannot reach FHIR server {host}: {type(exc).__name__}"
            ) from exc


def _transaction_result(response: httpx.Response, expected: int) -> TransactionResult:
    try:
        body = response.json()
    except ValueError as exc:
        raise FhirDeliveryError("FHIR server answered with something other than JSON") from exc
    entries = body.get("entry", []) if isinstance(body, dict) else []
    if body.get("type") != "transaction-response" or len(entries) != expected:
        raise FhirDeliveryError(
            f"FHIR server answered without a transaction-response for {expected} entries"
        )
    responses = [entry.get("response", {}) for entry in entries]
    return TransactionResult(
        statuses=tuple(str(r.get("status", "")) for r in responses),
        locations=tuple(str(r.get("location", "")) for r in responses),
    )


def _refusal(response: httpx.Response, sensitive: set[str]) -> FhirDeliveryError:
    status = response.status_code
    text = _outcome_text(response)
    for value in sorted(sensitive, key=len, reverse=True):
        text = text.replace(value, _REDACTED)
    return FhirDeliveryError(
        f"FHIR server refused the transaction ({status}): {text}",
        status_code=status,
        retryable=status >= 500 or status in (408, 429),
    )


def _outcome_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        kind = response.headers.get("content-type", "no content type")
        return f"no OperationOutcome ({kind})"
    parts = []
    for issue in body.get("issue", []):
        detail = (issue.get("details") or {}).get("text") or issue.get("diagnostics") or ""
        parts.append(f"{issue.get('severity', '?')} {issue.get('code', '?')}: {detail}".strip())
    text = "; ".join(parts) or "empty OperationOutcome"
    text = " ".join(text.split())
    return text if len(text) <= _MAX_OUTCOME_CHARS else text[: _MAX_OUTCOME_CHARS - 3] + "..."


def _sensitive_strings(bundle: dict[str, Any]) -> set[str]:
    """Identifier values, dates and search values in the Bundle, as sent and URL-encoded."""
    found: set[str] = set()

    def walk(node: Any, key: str = "") -> None:
        if isinstance(node, dict):
            if isinstance(node.get("value"), str) and "system" in node:
                found.add(node["value"])
            for child_key, child in node.items():
                walk(child, child_key)
        elif isinstance(node, list):
            for child in node:
                walk(child, key)
        elif isinstance(node, str):
            if key in ("birthDate", "effectiveDateTime", "occurrenceDateTime", "start", "started"):
                found.add(node)
            elif key in ("ifNoneExist", "reference") and "|" in node:
                encoded = node.rsplit("|", 1)[1]
                found.update({encoded, unquote(encoded), unescape_search(unquote(encoded))})

    walk(bundle)
    return {value for value in found if len(value) >= 3}
