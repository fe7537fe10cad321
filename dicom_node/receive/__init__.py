"""Receive: DICOM associations in, durable instances out.

In: C-ECHO and C-STORE from scanners and PACS (access list, optional TLS, a usability check
before anything is acknowledged). Out: files in the spool, rows in the catalogue, and a
callback when a series has stopped growing. Owns the `series` and `instances` tables.
"""

from dicom_node.receive.access import AccessPolicy
from dicom_node.receive.catalogue import (
    Instance,
    InstanceHeader,
    Series,
    SeriesState,
    mark_assembled,
    record_instance,
)
from dicom_node.receive.completion import CompletionPoller, SeriesKey, find_complete_series
from dicom_node.receive.listener import TRANSFER_SYNTAXES, Listener
from dicom_node.receive.spool import Spool, StoreOutcome, instance_path
from dicom_node.receive.validation import unusable_reason

__all__ = [
    "TRANSFER_SYNTAXES",
    "AccessPolicy",
    "CompletionPoller",
    "Instance",
    "InstanceHeader",
    "Listener",
    "Series",
    "SeriesKey",
    "SeriesState",
    "Spool",
    "StoreOutcome",
    "find_complete_series",
    "instance_path",
    "mark_assembled",
    "record_instance",
    "unusable_reason",
]
