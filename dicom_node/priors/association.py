"""One association to the prior source (the PACS), with the roles a query or retrieve needs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pynetdicom import AE
from pynetdicom.association import Association

from dicom_node.priors.errors import PriorsError
from monitor.settings import DestinationSettings


@contextmanager
def source_association(
    ae: AE, source: DestinationSettings, timeout_s: float, **kwargs: Any
) -> Iterator[Association]:
    """Open an association to `source` with `ae`'s requested contexts; released after use.

    A PACS that is down and one that refuses us both raise `PriorsError` (retryable): the
    outage passes, and a refusal is usually an AE title the PACS admin has yet to add.
    """
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_s
    assoc = ae.associate(
        str(source.host), int(source.port or 0), ae_title=str(source.ae_title), **kwargs
    )
    if not assoc.is_established:
        raise PriorsError(
            f"association to {source.name!r} ({source.host}:{source.port}) "
            "was rejected or could not be opened"
        )
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()


def final_status(responses: Iterator[tuple[Any, Any]], what: str) -> tuple[Any, list[Any]]:
    """Walk DIMSE responses: (the last status dataset, the pending identifiers).

    No status at all means the association was aborted or timed out mid-operation.
    """
    identifiers, last = [], None
    for status, identifier in responses:
        if status is None or "Status" not in status:
            raise PriorsError(f"{what}: no answer from the PACS (aborted or timed out)")
        last = status
        if status.Status in (0xFF00, 0xFF01) and identifier is not None:
            identifiers.append(identifier)
    if last is None:
        raise PriorsError(f"{what}: no answer from the PACS")
    return last, identifiers


def failure_reason(status: Any, what: str) -> str:
    """`<what> failed: status 0xNNNN`, with the PACS's Error Comment when it sent one."""
    comment = str(status.get("ErrorComment", "")).strip()
    detail = f" ({comment})" if comment else ""
    return f"{what} failed: status 0x{int(status.Status):04X}{detail}"
