"""Durable spool: an instance is on disk and catalogued before the sender hears "success".

A scanner deletes or forgets what it was told was stored, so the order is strict: temp file
in the final directory, flush + fsync, atomic rename onto the SOP-Instance-UID name, fsync
of the directory, then the catalogue row. A crash at any point leaves either no file, a
temp file (ignored), or a whole file that a resend simply re-catalogues.

Catalogue rows of concurrent associations share one commit (group commit): a durable SQLite
commit costs as much as a file fsync and commits are serialised, so with several senders
they would otherwise queue behind each other. Every caller still returns only after its own
row is committed.
"""

from __future__ import annotations

import enum
import hashlib
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from dicom_node.db import utcnow
from dicom_node.files import write_durably, write_durably_once
from dicom_node.logs import uid_hash
from dicom_node.receive.catalogue import InstanceHeader, has_instance, record_instance

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


class StoreOutcome(enum.Enum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    """The same data set again (a resend): nothing to do."""
    CONFLICT = "conflict"
    """Another data set under a SOP Instance UID already kept: the first copy stays, this one
    is set aside for review and refused."""


_META_START = 132
"""128-byte preamble and "DICM"; (0002,0000) File Meta Information Group Length follows."""


def dataset_body(encoded: bytes) -> bytes:
    """The data set after its file meta: what two copies of one instance must share (the file
    meta names the receiving side and may differ between two sends of the same object)."""
    if encoded[128:_META_START] != b"DICM" or encoded[_META_START : _META_START + 6] != (
        b"\x02\x00\x00\x00UL"
    ):
        return encoded
    group_length = int.from_bytes(encoded[_META_START + 8 : _META_START + 12], "little")
    return encoded[_META_START + 12 + group_length :]


def instance_path(root: Path, header: InstanceHeader) -> Path:
    """Where an instance lives: study/series folders named by UID hashes (short, fixed-length
    paths), the file named by its SOP Instance UID so a resend lands on itself.

    Raises ValueError for a SOP Instance UID that is not a DICOM UID (it becomes a file name).
    """
    if len(header.sop_uid) > 64 or not _UID.match(header.sop_uid):
        raise ValueError("SOP Instance UID is not a valid DICOM UID")
    return root / uid_hash(header.study_uid) / uid_hash(header.series_uid) / f"{header.sop_uid}.dcm"


@dataclass
class _PendingRow:
    """A durably written instance waiting for its catalogue commit."""

    header: InstanceHeader
    path: Path
    outcome: StoreOutcome | None = None
    error: Exception | None = None


class Spool:
    """Files under `root`, catalogue rows through `sessions`; safe to call from many threads."""

    def __init__(self, root: Path, sessions: sessionmaker) -> None:
        self.root = root
        self.conflicts = root.parent / "conflicts"
        """Copies refused as conflicting duplicates, kept for review."""
        self.sessions = sessions
        self._catalogue_lock = threading.Lock()
        """Serialises this process's catalogue writes so series counters never race; its
        holder commits every row waiting in `_waiting`."""
        self._waiting: list[_PendingRow] = []
        self._waiting_lock = threading.Lock()

    def store(self, header: InstanceHeader, encoded: bytes) -> StoreOutcome:
        """Spool one encoded DICOM file (with its file meta) as received.

        The first copy of an instance claims its file atomically, and only the claimant's row
        goes into the catalogue, so file and row always describe the same copy even when two
        associations deliver the instance at once. A later copy with the same data set is a
        duplicate (catalogued now if a crash left the first copy uncatalogued); one with other
        content is a conflict. Raises OSError if the file cannot be written and sqlalchemy
        errors if the catalogue cannot be updated; nothing may then be acknowledged as stored.
        """
        path = instance_path(self.root, header)
        if not path.exists() and write_durably_once(path, encoded):
            return self._catalogue_group(_PendingRow(header, path))
        if dataset_body(path.read_bytes()) != dataset_body(encoded):
            self._set_aside(header, encoded)
            return StoreOutcome.CONFLICT
        with self.sessions() as session:
            if has_instance(session, header.sop_uid):
                return StoreOutcome.DUPLICATE
        return self._catalogue_group(_PendingRow(header, path))

    def _set_aside(self, header: InstanceHeader, encoded: bytes) -> None:
        """Keep the refused copy for review beside the spool, named by hashes (no UIDs)."""
        digest = hashlib.sha256(encoded).hexdigest()[:16]
        write_durably(self.conflicts / f"{uid_hash(header.sop_uid)}-{digest}.dcm", encoded)

    def _catalogue_group(self, row: _PendingRow) -> StoreOutcome:
        """Queue the row; whoever holds the catalogue lock commits all rows queued so far.

        A caller whose row a previous lock holder already committed returns at once; errors
        are raised in the thread whose row they concern.
        """
        with self._waiting_lock:
            self._waiting.append(row)
        with self._catalogue_lock:
            if row.outcome is None and row.error is None:
                with self._waiting_lock:
                    batch, self._waiting = self._waiting, []
                self._commit(batch)
        if row.error is not None:
            raise row.error
        assert row.outcome is not None
        return row.outcome

    def _commit(self, batch: list[_PendingRow]) -> None:
        """One transaction for the batch; if one of them clashes (a duplicate), each row is
        settled on its own so the others are not refused for it."""
        if len(batch) > 1:
            try:
                with self.sessions() as session:
                    now = utcnow()
                    for row in batch:
                        record_instance(session, row.header, str(row.path), now)
                    session.commit()
            except IntegrityError:
                pass
            except Exception as exc:  # the handler maps it to a failure status per instance
                for row in batch:
                    row.error = exc
                return
            else:
                for row in batch:
                    row.outcome = StoreOutcome.STORED
                return
        for row in batch:
            try:
                row.outcome = self._catalogue(row.header, row.path)
            except Exception as exc:  # raised in the caller's thread by `_catalogue_group`
                row.error = exc

    def _catalogue(self, header: InstanceHeader, path: Path, retries: int = 1) -> StoreOutcome:
        """Insert the rows; a unique-key clash is either this instance stored meanwhile by
        another node (duplicate) or its series created meanwhile (retry once)."""
        with self.sessions() as session:
            try:
                record_instance(session, header, str(path), utcnow())
                session.commit()
                return StoreOutcome.STORED
            except IntegrityError:
                session.rollback()
                if has_instance(session, header.sop_uid):
                    return StoreOutcome.DUPLICATE
                if retries == 0:
                    raise
        return self._catalogue(header, path, retries - 1)
