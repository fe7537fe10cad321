"""The DICOM listener: Verification and Storage SCP in front of the spool.

It accepts every storage SOP class, so a modality that pushes a whole study never sees
failures for the parts we do not use; only MR images are spooled, the rest is acknowledged
and counted. Every failure path answers a DICOM failure status (never success) and leaves the
server running: a bad peer costs its own association, not the node.

Service wiring (``qsm-monitor serve``)::

    listener = Listener(settings, on_series_complete=lambda study, series: enqueue(...))
    listener.start()        # returns at once; associations and the poller run in threads
    ...
    listener.stop()
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from typing import Any

from pydicom import uid as ts
from pydicom.dataset import Dataset
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import ThreadedAssociationServer
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import sessionmaker

from dicom_node.db import configured_engine, create_schema
from dicom_node.logs import log_event, uid_hash
from dicom_node.receive.access import AccessPolicy
from dicom_node.receive.catalogue import InstanceHeader
from dicom_node.receive.completion import CompletionPoller, SeriesCallback
from dicom_node.receive.spool import Spool, StoreOutcome
from dicom_node.receive.tls import server_context
from dicom_node.receive.validation import decode_every_element, unusable_reason
from dicom_node.sop_classes import KEPT_SOP_CLASSES
from dicom_node.tcp import PROMPT_ACK_HANDLERS
from monitor.settings import Settings

LOGGER = logging.getLogger(__name__)

TRANSFER_SYNTAXES: list[str] = [
    ts.ExplicitVRLittleEndian,
    ts.ImplicitVRLittleEndian,
    ts.DeflatedExplicitVRLittleEndian,
    ts.JPEGLosslessSV1,
    ts.JPEGLossless,
    ts.JPEGLSLossless,
    ts.JPEGLSNearLossless,
    ts.JPEG2000Lossless,
    ts.JPEG2000,
    ts.RLELossless,
    ts.JPEGBaseline8Bit,
    ts.JPEGExtended12Bit,
]
"""Everything pydicom + pylibjpeg can decode later; the file is kept in the syntax received."""

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
DATASET_DOES_NOT_MATCH = 0xA900
CANNOT_UNDERSTAND = 0xC210
NOT_AUTHORIZED = 0x0124
DUPLICATE_SOP_INSTANCE = 0x0111
_REJECT_CALLING_AE = (0x01, 0x01, 0x03)
"""A-ASSOCIATE-RJ: rejected permanent, by the service user, calling AE title not recognised."""


class ListenerStats:
    """Thread-safe event counters for monitoring (stored, duplicate, dropped, failed, ...)."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class Listener:
    """Storage SCP + completion poller; `start()` returns immediately, `stop()` joins both.

    `on_series_complete(study_uid, series_uid)` runs in the poller thread once a series is
    stable (and again after a restart if it was never assembled), so it must be idempotent.
    Pass `sessions` to share the service's database engine; otherwise one is made from
    `settings.storage`. Raises ValueError on unusable access-list or TLS settings.
    """

    def __init__(
        self,
        settings: Settings,
        on_series_complete: SeriesCallback | None = None,
        sessions: sessionmaker | None = None,
    ) -> None:
        node, storage = settings.node, settings.storage
        self.settings = settings
        self.policy = AccessPolicy.from_settings(node)
        self.ssl_context = server_context(node.tls)
        self._own_engine = None
        if sessions is None:
            self._own_engine = configured_engine(storage)
            sessions = create_schema(self._own_engine)
        self.sessions = sessions
        self.spool = Spool(storage.data_dir / "spool", sessions)
        self.poller = CompletionPoller(sessions, node.stable_after_s, on_series_complete)
        self.stats = ListenerStats()
        self._server: ThreadedAssociationServer | None = None
        self._connections: Counter[str] = Counter()
        self._connections_lock = threading.Lock()

    def _make_ae(self) -> AE:
        node = self.settings.node
        ae = AE(ae_title=node.ae_title)
        ae.maximum_associations = node.max_associations
        ae.require_called_aet = node.require_called_ae
        ae.network_timeout = node.network_timeout_s
        ae.acse_timeout = node.acse_timeout_s
        ae.dimse_timeout = node.dimse_timeout_s
        ae.add_supported_context(Verification)
        for context in AllStoragePresentationContexts:
            ae.add_supported_context(context.abstract_syntax, TRANSFER_SYNTAXES)
        return ae

    def start(self) -> None:
        """Bind the port and begin accepting (raises OSError if the port is taken)."""
        if self._server is not None:
            raise RuntimeError("listener already started")
        node = self.settings.node
        handlers: list[Any] = [
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_CONN_CLOSE, self._on_connection_closed),
            *PROMPT_ACK_HANDLERS,
        ]
        self._server = self._make_ae().start_server(
            (node.host, node.port),
            block=False,
            ssl_context=self.ssl_context,
            evt_handlers=handlers,
        )
        self._server.verify_request = self._admit_connection  # type: ignore[method-assign]
        self.poller.start()
        log_event(LOGGER, "listener_started", port=node.port, tls=self.ssl_context is not None)

    def _admit_connection(self, request: object, client_address: Any) -> bool:
        """Refuse a TCP connection at once when its address already holds its share of
        connections: idle sockets from one peer must not take every slot (they would keep
        `max_associations` full, renewably, before any A-ASSOCIATE-RQ is checked). Counted
        here and released on close, not read from the running threads, which lag behind a
        burst of connections."""
        host = _host_of(client_address)
        with self._connections_lock:
            if self._connections[host] >= self.settings.node.max_associations_per_address:
                admitted = False
            else:
                self._connections[host] += 1
                admitted = True
        if not admitted:
            self.stats.count("refused_connections")
            log_event(LOGGER, "connection_refused", logging.WARNING, reason="per_address_limit")
        return admitted

    def _on_connection_closed(self, event: evt.Event) -> None:
        host = str(event.assoc.requestor.address)
        with self._connections_lock:
            if self._connections[host] > 0:
                self._connections[host] -= 1

    def stop(self) -> None:
        """Stop accepting, end open associations and the poller, release the database."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        self.poller.stop()
        if self._own_engine is not None:
            self._own_engine.dispose()
        log_event(LOGGER, "listener_stopped", **self.stats.snapshot())

    def __enter__(self) -> Listener:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _on_requested(self, event: evt.Event) -> None:
        """Apply the access policy before negotiation, answering a proper A-ASSOCIATE-RJ."""
        assoc = event.assoc
        calling_ae = str(assoc.requestor.primitive.calling_ae_title)
        address = str(assoc.requestor.address)
        if self.policy.permits(calling_ae, address):
            return
        self.stats.count("rejected_associations")
        log_event(LOGGER, "association_rejected", logging.WARNING, calling_ae=calling_ae)
        assoc.acse.send_reject(*_REJECT_CALLING_AE)
        assoc.kill()

    def _on_echo(self, event: evt.Event) -> int:
        self.stats.count("echoes")
        return SUCCESS

    def _on_store(self, event: evt.Event) -> int | Dataset:
        """Spool relevant instances durably, then answer; map every failure to a status."""
        sop_class = str(event.request.AffectedSOPClassUID)
        sop_uid = str(event.request.AffectedSOPInstanceUID)
        requestor = event.assoc.requestor
        if not self.policy.permits_storage(str(requestor.ae_title), str(requestor.address)):
            return self._failed(NOT_AUTHORIZED, "health_check_ae_may_not_store", sop_uid)
        if sop_class not in KEPT_SOP_CLASSES:
            self.stats.count("dropped")
            return SUCCESS
        try:
            ds = event.dataset
            decode_every_element(ds)
            reason = unusable_reason(ds, sop_uid, event.context.transfer_syntax, sop_class)
            header = InstanceHeader.from_dataset(ds, sop_uid, sop_class) if not reason else None
        except Exception as exc:  # undecodable data from the peer: its problem, not ours
            return self._failed(CANNOT_UNDERSTAND, "undecodable", sop_uid, exc)
        if header is None:
            return self._failed(DATASET_DOES_NOT_MATCH, str(reason), sop_uid)
        try:
            outcome = self.spool.store(header, event.encoded_dataset())
        except (OSError, SQLAlchemyError) as exc:
            return self._failed(OUT_OF_RESOURCES, "spool_unavailable", sop_uid, exc)
        except ValueError as exc:
            return self._failed(DATASET_DOES_NOT_MATCH, "bad_uid", sop_uid, exc)
        if outcome is StoreOutcome.CONFLICT:
            return self._failed(DUPLICATE_SOP_INSTANCE, "conflicting_duplicate_kept_first", sop_uid)
        self.stats.count(outcome.value)
        log_event(
            LOGGER,
            "instance_duplicate" if outcome is StoreOutcome.DUPLICATE else "instance_stored",
            logging.DEBUG,
            sop=uid_hash(sop_uid),
            series=uid_hash(header.series_uid),
        )
        return SUCCESS

    def _failed(
        self, status: int, reason: str, sop_uid: str, exc: Exception | None = None
    ) -> Dataset:
        """Count and log the refusal; answer its status with the reason as Error Comment, so
        the sender's log says why (the comment carries a reason code, never a UID)."""
        self.stats.count("failed")
        log_event(
            LOGGER,
            "instance_refused",
            logging.WARNING if exc is None else logging.ERROR,
            exc_info=exc is not None,
            reason=reason,
            status=f"0x{status:04X}",
            sop=uid_hash(sop_uid),
        )
        answer = Dataset()
        answer.Status = status
        answer.ErrorComment = reason.replace("_", " ")[:64]
        return answer


def _host_of(client_address: Any) -> str:
    return str(client_address[0] if isinstance(client_address, tuple) else client_address)
