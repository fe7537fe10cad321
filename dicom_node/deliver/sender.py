"""Deliver one output to one destination: C-STORE, folder copy, FHIR transaction, webhook.

Each call either delivers the whole output or raises `DeliveryError` with one plain reason;
retries and backoff belong to the outbox, not here. Every kind is idempotent on resend:
a PACS keeps one copy per SOP Instance UID, the FHIR Bundle creates conditionally, the
folder copy lands on the same names, a webhook alert carries a stable ``alert_id``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydicom import dcmread
from pydicom.errors import InvalidDicomError
from pynetdicom import AE

from dicom_node.deliver.items import DeliveryError, DeliveryItem
from dicom_node.files import write_durably
from dicom_node.logs import uid_hash
from dicom_node.tcp import send_without_delay
from monitor.settings import DestinationSettings

SUCCESS_STATUSES = {0x0000, 0xB000, 0xB006, 0xB007}
"""Success and the C-STORE warnings (coercion, elements discarded) that still mean stored."""


def is_dicom_file(path: Path) -> bool:
    """Part 10 files carry ``DICM`` after a 128-byte preamble; nothing else goes to a PACS."""
    with path.open("rb") as handle:
        return handle.read(132)[128:] == b"DICM"


def deliver(
    item: DeliveryItem, destination: DestinationSettings, calling_ae: str, timeout_s: float
) -> None:
    if destination.kind == "dicom":
        dicom_files = [p for p in item.files() if is_dicom_file(p)]
        if not dicom_files:
            raise DeliveryError(f"output {item.output!r} has no DICOM files")
        send_dicom(dicom_files, destination, calling_ae, timeout_s)
    elif destination.kind == "folder":
        copy_to_folder(item, destination)
    else:
        from dicom_node.deliver.http_sender import post_output  # httpx/FHIR: load only when used

        post_output(item, destination)


def send_dicom(
    files: Sequence[Path], destination: DestinationSettings, calling_ae: str, timeout_s: float
) -> None:
    """Store files over one association, proposing exactly their SOP classes and syntaxes."""
    if not (destination.host and destination.port and destination.ae_title):
        raise DeliveryError(f"DICOM destination {destination.name!r} needs host, port, ae_title")
    datasets = []
    for path in files:
        try:
            datasets.append(dcmread(path))
        except (OSError, InvalidDicomError) as exc:
            raise DeliveryError(f"cannot read {path.name}: {exc}") from exc
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_s
    for context in {(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID) for ds in datasets}:
        ae.add_requested_context(*context)
    assoc = ae.associate(destination.host, destination.port, ae_title=destination.ae_title)
    if not assoc.is_established:
        raise DeliveryError(
            f"association to {destination.name!r} ({destination.host}:{destination.port}) "
            "was rejected or could not be opened"
        )
    try:
        send_without_delay(assoc)
        for path, ds in zip(files, datasets, strict=True):
            status = assoc.send_c_store(ds)
            code = getattr(status, "Status", None)
            if code not in SUCCESS_STATUSES:
                detail = "no response" if code is None else f"status 0x{code:04X}"
                raise DeliveryError(f"{destination.name!r} did not store {path.name}: {detail}")
    finally:
        assoc.release()


def copy_to_folder(item: DeliveryItem, destination: DestinationSettings) -> None:
    """Copy the output to ``<path>/<study ref>/<acquisition ref>/``, each file atomically.

    Folder names are hashes, as in the data directory: UIDs stay inside the files, where the
    integration engine reads them. Output files are small (maps, reports), so reading each
    whole is fine.
    """
    if destination.path is None:
        raise DeliveryError(f"folder destination {destination.name!r} needs a path")
    acquisition_dir = item.path.parent
    target = destination.path / uid_hash(item.study_uid) / acquisition_dir.name
    for path in item.files():
        try:
            write_durably(target / path.relative_to(acquisition_dir), path.read_bytes())
        except OSError as exc:
            raise DeliveryError(f"cannot copy {path.name} to {destination.name!r}: {exc}") from exc
