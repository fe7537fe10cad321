"""Retrieve chosen series from the PACS: C-MOVE to our own AE title, or C-GET to ourselves.

C-MOVE has the PACS open a new association to our listener (it must know our AE title, host
and port), so the instances arrive exactly like a routed study. C-GET needs no PACS-side
configuration: the instances come back on our association and are spooled here. Either way
the catalogue and the completion poller take over, and intake assembles them as usual.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from dicom_node.priors.association import failure_reason, final_status, source_association
from dicom_node.priors.errors import PriorsError
from dicom_node.priors.query import PriorSeries
from dicom_node.priors.store import SpoolingStore
from dicom_node.sop_classes import KEPT_SOP_CLASSES
from monitor.settings import DestinationSettings, PriorsSettings

MOVE_DESTINATION_UNKNOWN = 0xA801
PARTIAL = 0xB000


@dataclass(frozen=True)
class RetrieveOutcome:
    """Sub-operation counts over all retrieved series."""

    completed: int = 0
    failed: int = 0
    warnings: int = 0


def retrieve_series(  # noqa: PLR0913 - what, from where, how, to whom
    series: Sequence[PriorSeries],
    source: DestinationSettings,
    calling_ae: str,
    settings: PriorsSettings,
    store: SpoolingStore | None = None,
) -> RetrieveOutcome:
    """Retrieve every series over one association; raises `PriorsError` on any failure.

    `store` is required for C-GET (where the instances land); C-MOVE sends them to
    `calling_ae`, our listener.
    """
    ae = AE(ae_title=calling_ae)
    kwargs = {}
    if settings.retrieve == "get":
        if store is None:
            raise PriorsError("C-GET needs a spool to store into", permanent=True)
        model = StudyRootQueryRetrieveInformationModelGet
        ae.add_requested_context(model)
        for sop_class in sorted(KEPT_SOP_CLASSES):
            ae.add_requested_context(sop_class)
        kwargs = {
            "ext_neg": [build_role(uid, scp_role=True) for uid in sorted(KEPT_SOP_CLASSES)],
            "evt_handlers": [(evt.EVT_C_STORE, store)],
        }
    else:
        model = StudyRootQueryRetrieveInformationModelMove
        ae.add_requested_context(model)
    total, partial = RetrieveOutcome(), False
    with source_association(ae, source, settings.timeout_s, **kwargs) as assoc:
        for one in series:  # a partly failed series does not stop the others
            keys = _series_identifier(one)
            if settings.retrieve == "get":
                responses = assoc.send_c_get(keys, model)
            else:
                responses = assoc.send_c_move(keys, calling_ae, model)
            status, _ = final_status(responses, f"C-{settings.retrieve.upper()}")
            total = _add(total, retrieve_outcome(status, calling_ae, settings.retrieve))
            partial = partial or int(status.Status) == PARTIAL
    if partial or total.failed:
        raise PriorsError(
            f"C-{settings.retrieve.upper()} partly failed: {total.failed} of "
            f"{total.failed + total.completed + total.warnings} instance(s) not retrieved"
        )
    return total


def _series_identifier(series: PriorSeries) -> Dataset:
    keys = Dataset()
    keys.QueryRetrieveLevel = "SERIES"
    keys.StudyInstanceUID = series.study_uid
    keys.SeriesInstanceUID = series.series_uid
    return keys


def retrieve_outcome(status: Dataset, calling_ae: str, method: str) -> RetrieveOutcome:
    """The final response's counts (also of a partial success, status 0xB000), or the one
    reason this retrieve failed outright."""
    code = int(status.Status)
    outcome = RetrieveOutcome(
        completed=int(status.get("NumberOfCompletedSuboperations", 0) or 0),
        failed=int(status.get("NumberOfFailedSuboperations", 0) or 0),
        warnings=int(status.get("NumberOfWarningSuboperations", 0) or 0),
    )
    if code == MOVE_DESTINATION_UNKNOWN:
        raise PriorsError(
            f"the PACS does not know our AE title {calling_ae!r} as a C-MOVE destination "
            '(add it there, with our host and port, or set [priors] retrieve = "get")'
        )
    if code == PARTIAL:
        return outcome  # the caller retrieves the other series first, then fails the attempt
    if code != 0x0000:
        reason = failure_reason(status, f"C-{method.upper()}")
        if method == "move" and not outcome.completed:  # Orthanc says 0xC000, not 0xA801
            reason += f"; does the PACS know our AE title {calling_ae!r} as a C-MOVE destination?"
        raise PriorsError(reason)
    return outcome


def _add(a: RetrieveOutcome, b: RetrieveOutcome) -> RetrieveOutcome:
    return RetrieveOutcome(a.completed + b.completed, a.failed + b.failed, a.warnings + b.warnings)
