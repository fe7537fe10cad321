"""C-GET brings instances over our own association: spool and catalogue them exactly as the
listener does a C-STORE, so they flow through the normal intake (completion, assembly)."""

from __future__ import annotations

from pathlib import Path

from pynetdicom import evt
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import sessionmaker

from dicom_node.receive.catalogue import InstanceHeader
from dicom_node.receive.spool import Spool, StoreOutcome
from dicom_node.receive.validation import unusable_reason

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000


class SpoolingStore:
    """The C-STORE handler of a C-GET: status 0 only once the instance is durable."""

    def __init__(self, data_dir: Path, sessions: sessionmaker) -> None:
        self.spool = Spool(data_dir / "spool", sessions)
        self.stored = 0

    def __call__(self, event: evt.Event) -> int:
        sop_uid = str(event.request.AffectedSOPInstanceUID)
        sop_class = str(event.request.AffectedSOPClassUID)
        try:
            ds = event.dataset
            if unusable_reason(ds, sop_uid, event.context.transfer_syntax, sop_class):
                return CANNOT_UNDERSTAND
            header = InstanceHeader.from_dataset(ds, sop_uid, sop_class)
            outcome = self.spool.store(header, event.encoded_dataset())
        except (OSError, SQLAlchemyError):
            return OUT_OF_RESOURCES
        except Exception:  # undecodable data from the PACS: fail that sub-operation only
            return CANNOT_UNDERSTAND
        if outcome is StoreOutcome.CONFLICT:
            return CANNOT_UNDERSTAND
        self.stored += 1
        return SUCCESS
