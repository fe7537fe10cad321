"""FHIR R4 output: the transaction Bundle for one processed acquisition, and its delivery.

Call ``build_bundle(record, PatientRef.from_record(record, settings.fhir), settings.fhir)`` and
hand the result to ``FhirClient.transaction`` (docs/fhir.md).
"""

from monitor.fhir.bundle import PatientRef, build_bundle

__all__ = ["PatientRef", "build_bundle"]
