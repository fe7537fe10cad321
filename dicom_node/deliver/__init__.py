"""Deliver: finished outputs in, copies at every destination out, each exactly once.

In: a result's output files (DICOM objects, FHIR bundle, alert). Out: C-STORE to PACS, a
folder copy, a FHIR transaction, a webhook, each retried with backoff and dead-lettered when
it cannot succeed. Owns the `outbox` table. The HTTP senders are loaded only when a
destination needs them (httpx, JWT).
"""

from dicom_node.deliver.items import DeliveryError, DeliveryItem
from dicom_node.deliver.outbox import Delivery, Outbox
from dicom_node.deliver.sender import deliver, is_dicom_file, send_dicom

__all__ = [
    "Delivery",
    "DeliveryError",
    "DeliveryItem",
    "Outbox",
    "deliver",
    "is_dicom_file",
    "send_dicom",
]
