"""A recording FHIR test endpoint on 127.0.0.1: transactions with conditional create, bearer
tokens and a SMART Backend Services token endpoint; conditional update (PUT Type?search) for
amended results. Delivery tests reuse it (tests/test_fhir_*,
tests/test_delivery_*).

It implements only what our Bundles need, but implements it as the specification says: a
transaction is all-or-nothing; ``ifNoneExist`` matching one resource returns ``200 OK`` with no
new resource; ``urn:uuid`` and conditional references are rewritten to the stored ids.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt

from monitor.fhir.ids import unescape_search

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class TransactionError(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class FhirTestServer:
    """Start with ``with FhirTestServer(...) as server``; ``stop()``/``start()`` keep the port
    and the stored resources, so a test can take the destination down and bring it back."""

    def __init__(
        self,
        bearer_token: str | None = None,
        smart_clients: dict[str, bytes] | None = None,
        token_lifetime_s: int = 300,
    ) -> None:
        """``smart_clients`` maps client_id to the PEM public key its assertions must verify
        with; with neither argument the server accepts requests without Authorization."""
        self.bearer_token = bearer_token
        self.smart_clients = dict(smart_clients or {})
        self.token_lifetime_s = token_lifetime_s
        self.requests: list[RecordedRequest] = []
        self.resources: dict[str, dict[str, dict[str, Any]]] = {}
        self.issued_tokens: dict[str, float] = {}
        self.granted_scopes: list[str] = []
        self._used_jti: set[str] = set()
        self._failures: list[int] = []
        self._delays: list[float] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> FhirTestServer:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), _handler_for(self))
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FhirTestServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    @property
    def token_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/auth/token"

    # -- test helpers -----------------------------------------------------------------------
    def fail_next(self, status: int, times: int = 1) -> None:
        """Answer the next ``times`` FHIR requests with ``status`` (outage, throttling)."""
        with self._lock:
            self._failures.extend([status] * times)

    def delay_next(self, seconds: float, times: int = 1) -> None:
        """Hold the next ``times`` FHIR requests this long before answering (slow server)."""
        with self._lock:
            self._delays.extend([seconds] * times)

    def count(self, resource_type: str | None = None) -> int:
        with self._lock:
            if resource_type is not None:
                return len(self.resources.get(resource_type, {}))
            return sum(len(stored) for stored in self.resources.values())

    def all(self, resource_type: str) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(r) for r in self.resources.get(resource_type, {}).values()]

    def transactions(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path == "/fhir"]

    # -- FHIR semantics ---------------------------------------------------------------------
    def search(self, resource_type: str, query: str) -> list[dict[str, Any]]:
        """Resources of a type matching ``identifier=system|value`` (the only search we need)."""
        with self._lock:
            return copy.deepcopy(self._search(resource_type, query))

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        with self._lock:
            return copy.deepcopy(self.resources.get(resource_type, {}).get(resource_id))

    def _search(self, resource_type: str, query: str) -> list[dict[str, Any]]:
        params = parse_qs(query, keep_blank_values=True)
        if set(params) != {"identifier"} or len(params["identifier"]) != 1:
            raise TransactionError(HTTPStatus.BAD_REQUEST, f"unsupported search: {query}")
        system, value = _split_token(params["identifier"][0])
        return [
            resource
            for resource in self.resources.get(resource_type, {}).values()
            if any(
                i.get("system") == system and i.get("value") == value
                for i in resource.get("identifier", [])
            )
        ]

    def process_transaction(self, bundle: dict[str, Any]) -> dict[str, Any]:
        if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "transaction":
            raise TransactionError(HTTPStatus.BAD_REQUEST, "expected a transaction Bundle")
        with self._lock:
            staged: dict[str, dict[str, Any]] = {}
            resolved: dict[str, str] = {}
            responses = []
            for entry in bundle.get("entry", []):
                responses.append(self._stage_entry(entry, staged, resolved))
            for resource in staged.values():
                _rewrite_references(resource, lambda ref: self._resolve(ref, resolved, staged))
            for resource in staged.values():  # all entries succeeded: commit them together
                self.resources.setdefault(resource["resourceType"], {})[resource["id"]] = resource
        return {
            "resourceType": "Bundle",
            "type": "transaction-response",
            "entry": [{"response": response} for response in responses],
        }

    def _stage_entry(
        self, entry: dict[str, Any], staged: dict[str, dict], resolved: dict[str, str]
    ) -> dict[str, str]:
        request = entry.get("request", {})
        resource = entry.get("resource") or {}
        resource_type = resource.get("resourceType")
        if request.get("method") == "PUT":
            return self._stage_update(entry, staged, resolved)
        if request.get("method") != "POST" or request.get("url") != resource_type:
            raise TransactionError(HTTPStatus.BAD_REQUEST, "only POST <type> entries supported")
        if request.get("ifNoneExist"):
            matches = self._search(resource_type, request["ifNoneExist"])
            matches += [
                r
                for r in staged.values()
                if r["resourceType"] == resource_type
                and r.get("identifier") == resource.get("identifier")
            ]
            if len(matches) > 1:
                raise TransactionError(
                    HTTPStatus.PRECONDITION_FAILED, "ifNoneExist matched several resources"
                )
            if matches:
                location = f"{resource_type}/{matches[0]['id']}"
                resolved[entry.get("fullUrl", location)] = location
                return {"status": "200 OK", "location": f"{location}/_history/1"}
        created = copy.deepcopy(resource)
        created["id"] = uuid.uuid4().hex
        created["meta"] = {"versionId": "1"}
        location = f"{resource_type}/{created['id']}"
        staged[location] = created
        resolved[entry.get("fullUrl", location)] = location
        return {"status": "201 Created", "location": f"{location}/_history/1"}

    def _stage_update(
        self, entry: dict[str, Any], staged: dict[str, dict], resolved: dict[str, str]
    ) -> dict[str, str]:
        """Conditional update ``PUT Type?search``: no match creates, one match is replaced in
        place (same id, next version), several are refused (FHIR R4 3.1.0.4.3)."""
        resource = entry.get("resource") or {}
        resource_type = resource.get("resourceType")
        conditional = re.match(r"^([A-Z][A-Za-z]+)\?(.+)$", entry["request"].get("url", ""))
        if not conditional or conditional.group(1) != resource_type:
            raise TransactionError(HTTPStatus.BAD_REQUEST, "only PUT <type>?<search> supported")
        matches = self._search(resource_type, conditional.group(2))
        if len(matches) > 1:
            raise TransactionError(
                HTTPStatus.PRECONDITION_FAILED, "conditional update matched several resources"
            )
        updated = copy.deepcopy(resource)
        version = int(matches[0]["meta"]["versionId"]) + 1 if matches else 1
        updated["id"] = matches[0]["id"] if matches else uuid.uuid4().hex
        updated["meta"] = {"versionId": str(version)}
        location = f"{resource_type}/{updated['id']}"
        staged[location] = updated
        resolved[entry.get("fullUrl", location)] = location
        status = "200 OK" if matches else "201 Created"
        return {"status": status, "location": f"{location}/_history/{version}"}

    def _resolve(self, reference: str, resolved: dict[str, str], staged: dict) -> str:
        if reference in resolved:
            return resolved[reference]
        if reference.startswith("urn:uuid:"):
            raise TransactionError(HTTPStatus.BAD_REQUEST, f"unresolved {reference}")
        conditional = re.match(r"^([A-Z][A-Za-z]+)\?(.*)$", reference)
        if not conditional:
            return reference
        resource_type, query = conditional.groups()
        matches = self._search(resource_type, query)
        if len(matches) != 1:
            # Real servers echo the search, patient identifier included: clients must redact.
            raise TransactionError(
                HTTPStatus.PRECONDITION_FAILED,
                f"conditional reference {reference} matched {len(matches)} resources",
            )
        return f"{resource_type}/{matches[0]['id']}"

    # -- auth -------------------------------------------------------------------------------
    def authorised(self, header: str | None) -> bool:
        if self.bearer_token is None and not self.smart_clients:
            return True
        if not header or not header.startswith("Bearer "):
            return False
        token = header.removeprefix("Bearer ")
        if self.bearer_token is not None and token == self.bearer_token:
            return True
        with self._lock:
            expires = self.issued_tokens.get(token)
        return expires is not None and expires > time.time()

    def issue_token(self, form: dict[str, list[str]]) -> dict[str, Any]:
        """OAuth client-credentials grant with a private_key_jwt assertion (SMART)."""
        field = {key: values[0] for key, values in form.items() if values}
        if field.get("grant_type") != "client_credentials":
            raise _OAuthError("unsupported_grant_type", "grant_type must be client_credentials")
        if field.get("client_assertion_type") != ASSERTION_TYPE:
            raise _OAuthError("invalid_client", "client_assertion_type must be jwt-bearer")
        assertion = field.get("client_assertion", "")
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError as exc:
            raise _OAuthError("invalid_client", f"malformed assertion: {exc}") from exc
        client_id = unverified.get("iss")
        if client_id not in self.smart_clients or unverified.get("sub") != client_id:
            raise _OAuthError("invalid_client", "unknown client or iss != sub")
        if header.get("alg") not in ("RS384", "ES384"):
            raise _OAuthError("invalid_client", f"algorithm {header.get('alg')} not accepted")
        try:
            claims = jwt.decode(
                assertion,
                self.smart_clients[client_id],
                algorithms=[header["alg"]],
                audience=self.token_url,
                options={"require": ["exp", "jti", "iss", "sub", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise _OAuthError("invalid_client", f"assertion rejected: {exc}") from exc
        if claims["exp"] > time.time() + 300 + 5:
            raise _OAuthError("invalid_client", "assertion lives longer than five minutes")
        with self._lock:
            if claims["jti"] in self._used_jti:
                raise _OAuthError("invalid_client", "assertion replayed (jti seen before)")
            self._used_jti.add(claims["jti"])
            token = uuid.uuid4().hex
            self.issued_tokens[token] = time.time() + self.token_lifetime_s
            self.granted_scopes.append(field.get("scope", ""))
        return {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": self.token_lifetime_s,
            "scope": field.get("scope", ""),
        }

    def next_failure(self) -> int | None:
        with self._lock:
            delay = self._delays.pop(0) if self._delays else 0.0
            failure = self._failures.pop(0) if self._failures else None
        time.sleep(delay)
        return failure


def _split_token(token: str) -> tuple[str, str]:
    """``system|value`` with FHIR's backslash escapes (``\\|`` is a bar inside a value)."""
    parts = re.split(r"(?<!\\)\|", token, maxsplit=1)
    if len(parts) != 2:
        raise TransactionError(HTTPStatus.BAD_REQUEST, "identifier search needs system|value")
    return unescape_search(parts[0]), unescape_search(parts[1])


class _OAuthError(Exception):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def _rewrite_references(node: Any, resolve: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str) and not value.startswith("#"):
                node[key] = resolve(value)
            else:
                _rewrite_references(value, resolve)
    elif isinstance(node, list):
        for item in node:
            _rewrite_references(item, resolve)


def operation_outcome(status: HTTPStatus, message: str) -> dict[str, Any]:
    code = {401: "login", 404: "not-found", 412: "conflict"}.get(status.value, "processing")
    if status.value >= 500:
        code = "transient"
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": message}],
    }


def _handler_for(server: FhirTestServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            """Quiet: the recorded requests are the log."""

        def _record(self) -> RecordedRequest:
            length = int(self.headers.get("Content-Length") or 0)
            request = RecordedRequest(
                method=self.command,
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self.rfile.read(length) if length else b"",
            )
            server.requests.append(request)
            return request

        def _send(self, status: int, body: dict[str, Any], content_type: str) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _fhir(self, status: int, body: dict[str, Any]) -> None:
            self._send(status, body, "application/fhir+json")

        def _fhir_gate(self, request: RecordedRequest) -> bool:
            """Auth and injected failures; True when the request may be processed."""
            if not server.authorised(request.headers.get("authorization")):
                self._fhir(401, operation_outcome(HTTPStatus.UNAUTHORIZED, "invalid token"))
                return False
            failure = server.next_failure()
            if failure is not None:
                status = HTTPStatus(failure)
                self._fhir(failure, operation_outcome(status, f"injected {status.phrase}"))
                return False
            return True

        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            request = self._record()
            url = urlsplit(request.path)
            if url.path == "/fhir/.well-known/smart-configuration":
                self._send(200, _smart_configuration(server), "application/json")
                return
            if not self._fhir_gate(request):
                return
            parts = url.path.strip("/").split("/")
            if parts == ["fhir", "metadata"]:
                self._fhir(200, {"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1"})
            elif len(parts) == 2 and parts[0] == "fhir":
                try:
                    matches = server.search(parts[1], url.query)
                except TransactionError as exc:
                    self._fhir(exc.status, operation_outcome(exc.status, str(exc)))
                    return
                self._fhir(200, _searchset(matches))
            elif len(parts) == 3 and parts[0] == "fhir" and server.read(parts[1], parts[2]):
                self._fhir(200, server.read(parts[1], parts[2]))
            else:
                self._fhir(404, operation_outcome(HTTPStatus.NOT_FOUND, "not found"))

        def do_POST(self) -> None:  # noqa: N802 - stdlib name
            request = self._record()
            path = urlsplit(request.path).path
            if path == "/auth/token":
                try:
                    body = server.issue_token(parse_qs(request.body.decode()))
                except _OAuthError as exc:
                    error = {"error": exc.error, "error_description": exc.description}
                    self._send(
                        400 if exc.error != "invalid_client" else 401, error, "application/json"
                    )
                    return
                self._send(200, body, "application/json")
                return
            if path.rstrip("/") != "/fhir":
                self._fhir(404, operation_outcome(HTTPStatus.NOT_FOUND, "not found"))
                return
            if not self._fhir_gate(request):
                return
            try:
                response = server.process_transaction(request.json())
            except (ValueError, TransactionError) as exc:
                status = getattr(exc, "status", HTTPStatus.BAD_REQUEST)
                self._fhir(status, operation_outcome(status, str(exc)))
                return
            self._fhir(200, response)

    return Handler


def _searchset(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r} for r in resources],
    }


def _smart_configuration(server: FhirTestServer) -> dict[str, Any]:
    return {
        "token_endpoint": server.token_url,
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "grant_types_supported": ["client_credentials"],
        "capabilities": ["client-confidential-asymmetric"],
    }
