"""The typed processing record (`ProcessingRecord`) and its per-structure values.

In: the pipeline's results (or a stored JSON row). Out: one frozen value every output builder
reads by attribute. Lives in `monitor` because `monitor.fhir` consumes it and `monitor` never
imports `dicom_node`.
"""

from monitor.record.fields import known_fields, optional_float
from monitor.record.provenance import Provenance, region_words
from monitor.record.record import (
    TRACKING_FIELDS,
    Norms,
    ProcessingRecord,
    Qc,
    Risk,
    tracking_values,
)
from monitor.record.values import (
    BILATERAL,
    REPORTED_DECIMALS,
    SIDES,
    Structures,
    StructureValues,
    Values,
)

__all__ = [
    "BILATERAL",
    "REPORTED_DECIMALS",
    "SIDES",
    "TRACKING_FIELDS",
    "Norms",
    "ProcessingRecord",
    "Provenance",
    "Qc",
    "Risk",
    "StructureValues",
    "Structures",
    "Values",
    "known_fields",
    "optional_float",
    "region_words",
    "tracking_values",
]
