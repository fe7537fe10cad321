"""Identifiers and bundle-internal references that are identical on every resend.

A resend must produce the same bundle: conditional creates match on the business identifiers,
and deterministic ``urn:uuid`` full URLs keep the bundle byte-stable, which makes a resend easy
to audit. Identifiers contain only UIDs and a hash, never patient data.
"""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import quote

from monitor.fhir.codes import DICOM_UID_SYSTEM, RESULT_IDENTIFIER_SYSTEM

_NAMESPACE = uuid.UUID("5d0f6a52-1c1e-4a43-9a0e-3f1f3c6a7b21")
"""Fixed namespace for our UUIDv5 full URLs; changing it changes every full URL."""


class ResultKeys:
    """Names every resource derived from one processed acquisition of one study."""

    def __init__(self, study_uid: str, acquisition_key: str | None) -> None:
        if not study_uid:
            raise ValueError("record has no study_uid; FHIR resources need the study")
        self.study_uid = study_uid
        # A study can hold several QSM acquisitions; the acquisition key (a SHA-256 of its
        # SOP Instance UIDs) keeps their results apart while staying stable across resends.
        suffix = f"/{acquisition_key[:16]}" if acquisition_key else ""
        self._base = f"{study_uid}{suffix}"

    def value(self, *parts: str) -> str:
        """Business identifier value, e.g. ``<study>/<acq>/observation/thalamus/left``."""
        return "/".join((self._base, *parts))

    def identifier(self, *parts: str) -> dict[str, Any]:
        return {"system": RESULT_IDENTIFIER_SYSTEM, "value": self.value(*parts)}

    def full_url(self, *parts: str) -> str:
        return f"urn:uuid:{uuid.uuid5(_NAMESPACE, self.value(*parts))}"


def study_identifier(study_uid: str) -> dict[str, Any]:
    """The DICOM convention for a Study Instance UID as a FHIR identifier."""
    return {"system": DICOM_UID_SYSTEM, "value": f"urn:oid:{study_uid}"}


def identifier_query(identifier: dict[str, Any]) -> str:
    """Search string ``identifier=system|value`` for ifNoneExist and conditional references.

    FHIR search escapes ``\\ | , $`` inside a value with a backslash (a Patient ID may hold
    any of them); the result is then URL-encoded.
    """
    system = quote(_escape_search(identifier["system"]), safe=":/.-")
    value = quote(_escape_search(identifier["value"]), safe=":/.-")
    return f"identifier={system}|{value}"


def _escape_search(text: str) -> str:
    return "".join(f"\\{char}" if char in "\\|,$" else char for char in text)


def unescape_search(text: str) -> str:
    """Inverse of the search escaping (for matching and redaction)."""
    return re.sub(r"\\(.)", r"\1", text)
