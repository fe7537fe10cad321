"""Spool durability rules, catalogue header extraction, access policy and log privacy."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import MRImageStorage, generate_uid
from sqlalchemy import select
from support.node_helpers import mr_dataset

import dicom_node.files
from dicom_node.db import create_schema, make_engine
from dicom_node.files import write_durably
from dicom_node.logs import JsonLineFormatter, log_event, uid_hash
from dicom_node.receive.access import AccessPolicy
from dicom_node.receive.catalogue import Instance, InstanceHeader
from dicom_node.receive.spool import Spool, StoreOutcome, instance_path
from monitor.settings import NodeSettings


def header_for(sop_uid: str | None = None) -> InstanceHeader:
    return InstanceHeader(
        sop_uid=generate_uid() if sop_uid is None else sop_uid,
        sop_class=MRImageStorage,
        study_uid=generate_uid(),
        series_uid=generate_uid(),
    )


@pytest.fixture
def spool(db_url: str, tmp_path: Path) -> Spool:
    sessions = create_schema(make_engine(db_url))
    return Spool(tmp_path / "spool", sessions)


def test_instance_is_filed_under_hashed_study_and_series(tmp_path: Path) -> None:
    header = header_for()
    path = instance_path(tmp_path, header)
    assert path.parent.name == uid_hash(header.series_uid)
    assert path.parent.parent.name == uid_hash(header.study_uid)
    assert path.name == f"{header.sop_uid}.dcm"


@pytest.mark.parametrize("bad_uid", ["../../etc/passwd", "1.2.3/4", "1." * 40 + "1", ""])
def test_non_uid_sop_instance_uid_cannot_become_a_path(tmp_path: Path, bad_uid: str) -> None:
    with pytest.raises(ValueError, match="not a valid DICOM UID"):
        instance_path(tmp_path, header_for(bad_uid))


def test_failed_write_leaves_neither_temp_nor_final_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "a" / "b" / "x.dcm"

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(dicom_node.files.os, "fsync", failing_fsync)
    with pytest.raises(OSError):
        write_durably(target, b"payload")
    assert list(target.parent.iterdir()) == []


def test_write_replaces_atomically(tmp_path: Path) -> None:
    target = tmp_path / "x.dcm"
    write_durably(target, b"first")
    write_durably(target, b"second")
    assert target.read_bytes() == b"second"
    assert [p.name for p in tmp_path.iterdir()] == ["x.dcm"]


def test_store_twice_is_one_row_and_one_file(spool: Spool) -> None:
    header = header_for()
    assert spool.store(header, b"dicom bytes") is StoreOutcome.STORED
    assert spool.store(header, b"dicom bytes") is StoreOutcome.DUPLICATE
    with spool.sessions() as session:
        rows = session.scalars(select(Instance)).all()
    assert len(rows) == 1
    assert Path(rows[0].path).read_bytes() == b"dicom bytes"


def test_header_reads_sort_fields_and_tolerates_malformed_values() -> None:
    ds = mr_dataset(generate_uid(), generate_uid(), instance_number=7, images_in_acquisition=12)
    ds.EchoNumbers = [2, 3]
    ds.SeriesNumber = 9191
    encoded = io.BytesIO()
    ds.save_as(encoded, enforce_file_format=True)
    ds = pydicom.dcmread(io.BytesIO(encoded.getvalue().replace(b"9191", b"x9x1")))
    with pytest.warns(UserWarning, match="VR IS"):
        header = InstanceHeader.from_dataset(ds, ds.SOPInstanceUID, MRImageStorage)
    assert (header.instance_number, header.echo_number, header.echo_time_ms) == (7, 2, 20.0)
    assert header.series_number is None
    assert header.image_type == "ORIGINAL\\PRIMARY\\P\\ND"
    assert header.announced_total == 12
    ds.NumberOfFrames = 40
    multiframe = InstanceHeader.from_dataset(ds, ds.SOPInstanceUID, MRImageStorage)
    assert multiframe.announced_total is None


def test_header_without_series_uid_is_refused() -> None:
    ds = mr_dataset(generate_uid(), generate_uid())
    del ds.SeriesInstanceUID
    with pytest.raises(ValueError, match="Series Instance UID"):
        InstanceHeader.from_dataset(ds, ds.SOPInstanceUID, MRImageStorage)


def test_access_policy_combines_titles_and_networks() -> None:
    node = NodeSettings(
        allowed_calling_ae=["MRI1", "PACS"], calling_ae_addresses={"MRI1": ["192.168.7.0/24"]}
    )
    policy = AccessPolicy.from_settings(node)
    assert policy.permits("MRI1", "192.168.7.20")
    assert not policy.permits("MRI1", "192.168.8.20")
    assert policy.permits("PACS", "10.0.0.1")
    assert not policy.permits("OTHER", "192.168.7.20")
    assert AccessPolicy.from_settings(NodeSettings()).permits("ANYONE", "::1")


def test_access_policy_names_a_bad_address() -> None:
    with pytest.raises(ValueError, match="MRI1"):
        AccessPolicy.from_settings(NodeSettings(calling_ae_addresses={"MRI1": ["not-an-ip"]}))


def test_log_lines_are_json_and_keep_uids_out_of_errors(tmp_path: Path) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLineFormatter())
    logger = logging.getLogger("test_node_spool.privacy")
    logger.addHandler(handler)
    sop_uid = generate_uid()
    try:
        (tmp_path / "missing" / f"{sop_uid}.dcm").read_bytes()
    except OSError:
        log_event(logger, "instance_refused", logging.ERROR, exc_info=True, sop=uid_hash(sop_uid))
    record = json.loads(stream.getvalue())
    assert (record["event"], record["sop"], record["errno"]) == (
        "instance_refused",
        uid_hash(sop_uid),
        "ENOENT",
    )
    assert sop_uid not in stream.getvalue()
