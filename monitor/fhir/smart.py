"""SMART Backend Services: an access token for a system client, from a signed JWT assertion.

The client proves its identity with a short-lived JWT signed by its private key (RS384 or
ES384, the two algorithms the SMART specification requires servers to support); the server
checks it against the public key registered for ``client_id``. No secret crosses the network.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
import jwt

from monitor.fhir.errors import FhirDeliveryError

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME_S = 300
"""SMART caps the assertion's lifetime at five minutes."""
DEFAULT_SCOPE = " ".join(
    f"system/{resource}.cs"
    for resource in (
        "Patient",
        "ImagingStudy",
        "Observation",
        "DiagnosticReport",
        "RiskAssessment",
        "Flag",
    )
)
"""SMART v2 scopes: create and search (conditional create searches) for what the Bundle holds."""


@dataclass(frozen=True)
class SmartBackendAuth:
    """A registered backend client: where to get tokens and how to sign the assertion."""

    token_url: str
    client_id: str
    private_key_file: Path
    key_id: str | None = None
    algorithm: Literal["RS384", "ES384"] = "RS384"
    scope: str = DEFAULT_SCOPE


class SmartTokenSource:
    """Fetches access tokens and reuses one until shortly before it expires."""

    def __init__(self, auth: SmartBackendAuth) -> None:
        self.auth = auth
        self._token: str | None = None
        self._expires_at = 0.0

    def token(self, http: httpx.Client) -> str:
        if self._token is None or time.monotonic() > self._expires_at - 30.0:
            self._fetch(http)
        assert self._token is not None
        return self._token

    def invalidate(self) -> None:
        """Forget the cached token (the server rejected it before its stated expiry)."""
        self._token = None

    def _fetch(self, http: httpx.Client) -> None:
        form = {
            "grant_type": "client_credentials",
            "scope": self.auth.scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self._assertion(),
        }
        try:
            response = http.post(self.auth.token_url, data=form)
        except httpx.TimeoutException as exc:
            raise FhirDeliveryError("SMART token endpoint did not answer in time") from exc
        except httpx.TransportError as exc:
            raise FhirDeliveryError(
                f"cannot reach SMART token endpoint: {type(exc).__name__}"
            ) from exc
        body = _json_or_empty(response)
        if response.status_code != 200 or "access_token" not in body:
            reason = body.get("error_description") or body.get("error") or "no access_token"
            raise FhirDeliveryError(
                f"SMART token request refused ({response.status_code}): {reason}",
                status_code=response.status_code,
                retryable=response.status_code >= 500 or response.status_code == 429,
            )
        self._token = str(body["access_token"])
        self._expires_at = time.monotonic() + float(body.get("expires_in", 300))

    def _assertion(self) -> str:
        try:
            key = self.auth.private_key_file.read_bytes()
        except OSError as exc:
            raise FhirDeliveryError(
                f"cannot read the SMART private key file {self.auth.private_key_file}: "
                f"{exc.strerror}",
                retryable=False,
            ) from exc
        now = int(time.time())
        claims = {
            "iss": self.auth.client_id,
            "sub": self.auth.client_id,
            "aud": self.auth.token_url,
            "exp": now + ASSERTION_LIFETIME_S,
            "iat": now,
            "jti": uuid.uuid4().hex,
        }
        headers = {"typ": "JWT", **({"kid": self.auth.key_id} if self.auth.key_id else {})}
        try:
            return jwt.encode(claims, key, algorithm=self.auth.algorithm, headers=headers)
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise FhirDeliveryError(
                f"the SMART private key cannot sign {self.auth.algorithm}: {exc}",
                retryable=False,
            ) from exc


def _json_or_empty(response: httpx.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
