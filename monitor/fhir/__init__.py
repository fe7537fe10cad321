"""FHIR R4 output: the transaction Bundle for one processed acquisition, and its delivery.

Build with ``build_bundle(record, PatientRef.from_record(record, settings.fhir), settings.fhir)``
and deliver with ``FhirClient(FhirEndpoint(...)).transaction(bundle)`` (docs/fhir.md).
"""

from monitor.fhir.bundle import PatientRef, build_bundle
from monitor.fhir.client import BearerAuth, FhirClient, FhirEndpoint, TransactionResult
from monitor.fhir.errors import FhirDeliveryError
from monitor.fhir.smart import SmartBackendAuth

__all__ = [
    "BearerAuth",
    "FhirClient",
    "FhirDeliveryError",
    "FhirEndpoint",
    "PatientRef",
    "SmartBackendAuth",
    "TransactionResult",
    "build_bundle",
]
