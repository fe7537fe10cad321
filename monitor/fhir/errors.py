"""The one error type of FHIR delivery, with what an outbox needs to decide on a retry."""

from __future__ import annotations

from monitor.errors import MonitorError


class FhirDeliveryError(MonitorError, RuntimeError):
    """Delivery failed; the message is one line without patient data.

    ``retryable`` is False when sending the same thing again cannot help (the server rejected
    the content or the credentials), True for outages, timeouts and throttling.
    """

    def __init__(self, message: str, status_code: int | None = None, retryable: bool = True):
        super().__init__(message)
        self.status_code = status_code
        self.retryable = retryable
