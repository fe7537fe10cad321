"""Two different objects under one SOP Instance UID: the first copy is kept, catalogued and
never overwritten, the other refused and set aside, even when both arrive at once."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import MRImageStorage, generate_uid
from sqlalchemy import func, select
from support.node_helpers import mr_dataset

from dicom_node.db import create_schema, make_engine
from dicom_node.receive.catalogue import Instance, InstanceHeader
from dicom_node.receive.spool import Spool, StoreOutcome, instance_path


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    sessions = create_schema(make_engine(f"sqlite:///{tmp_path / 'node.sqlite3'}"))
    return Spool(tmp_path / "spool", sessions)


def encoded_copy(sop_uid: str, patient_id: str, receiver: str = "QSMMON") -> bytes:
    """A Part 10 encoding as the listener writes it; `receiver` changes only the file meta."""
    ds = mr_dataset(generate_uid(), generate_uid())
    ds.SOPInstanceUID = sop_uid
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.SourceApplicationEntityTitle = receiver
    ds.StudyInstanceUID = ds.SeriesInstanceUID = "1.2.3"
    ds.PatientID = patient_id
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def header(sop_uid: str) -> InstanceHeader:
    return InstanceHeader(
        sop_uid=sop_uid, sop_class=MRImageStorage, study_uid="1.2.3", series_uid="1.2.3"
    )


def rows(spool: Spool) -> int:
    with spool.sessions() as session:
        return int(session.scalar(select(func.count(Instance.id))) or 0)


def test_a_different_object_under_a_kept_uid_is_refused_and_set_aside(spool: Spool) -> None:
    sop = generate_uid()
    first, other = encoded_copy(sop, "A"), encoded_copy(sop, "B")

    assert spool.store(header(sop), first) is StoreOutcome.STORED
    assert spool.store(header(sop), other) is StoreOutcome.CONFLICT

    kept = pydicom.dcmread(instance_path(spool.root, header(sop)))
    assert kept.PatientID == "A" and rows(spool) == 1
    set_aside = list(spool.conflicts.iterdir())
    assert len(set_aside) == 1 and pydicom.dcmread(set_aside[0]).PatientID == "B"
    assert sop not in set_aside[0].name


def test_the_same_object_through_another_receiver_is_a_plain_duplicate(spool: Spool) -> None:
    sop = generate_uid()
    assert spool.store(header(sop), encoded_copy(sop, "A", "QSMMON")) is StoreOutcome.STORED
    again = encoded_copy(sop, "A", "OTHERNODE")
    assert spool.store(header(sop), again) is StoreOutcome.DUPLICATE
    assert rows(spool) == 1 and not spool.conflicts.exists()


def test_a_file_left_uncatalogued_by_a_crash_is_catalogued_on_resend(spool: Spool) -> None:
    sop = generate_uid()
    data = encoded_copy(sop, "A")
    path = instance_path(spool.root, header(sop))
    path.parent.mkdir(parents=True)
    path.write_bytes(data)  # written, then the process died before its catalogue commit

    assert spool.store(header(sop), data) is StoreOutcome.STORED
    assert rows(spool) == 1


def test_concurrent_conflicting_copies_leave_file_and_row_in_agreement(spool: Spool) -> None:
    for _ in range(20):
        sop = generate_uid()
        copies = {"A": encoded_copy(sop, "A"), "B": encoded_copy(sop, "B")}
        outcomes: dict[str, StoreOutcome] = {}
        start = threading.Barrier(2)

        def send(name: str, sop: str = sop, copies=copies, outcomes=outcomes, start=start) -> None:
            start.wait()
            outcomes[name] = spool.store(header(sop), copies[name])

        threads = [threading.Thread(target=send, args=(name,)) for name in copies]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        stored = [name for name, outcome in outcomes.items() if outcome is StoreOutcome.STORED]
        assert sorted(outcomes.values(), key=lambda o: o.value) == [
            StoreOutcome.CONFLICT,
            StoreOutcome.STORED,
        ]
        on_disk = pydicom.dcmread(instance_path(spool.root, header(sop))).PatientID
        assert on_disk == stored[0]
    assert rows(spool) == 20
