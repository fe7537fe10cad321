"""Outbox deliveries: folder copies and retry bookkeeping, without network peers."""

from __future__ import annotations

from pathlib import Path

from node_helpers import free_port, write_series

from dicom_node.db import create_schema, database_url, make_engine
from dicom_node.leasing import WorkState
from dicom_node.outbox import Outbox
from monitor.settings import DestinationSettings, load_settings


def make_outbox(tmp_path: Path, destinations: list[DestinationSettings]) -> Outbox:
    settings = load_settings(
        None,
        storage={"data_dir": tmp_path / "data"},
        destinations=[d.model_dump() for d in destinations],
        outbox={"backoff_s": 0.0, "max_attempts": 2},
        node={"network_timeout_s": 2.0},
    )
    return Outbox(create_schema(make_engine(database_url(settings.storage.data_dir))), settings)


def test_folder_destination_gets_every_file_once(tmp_path: Path) -> None:
    target = tmp_path / "export"
    outbox = make_outbox(tmp_path, [DestinationSettings(name="f", kind="folder", path=target)])
    files = write_series(tmp_path / "out" / "abc", 2)
    report = tmp_path / "out" / "abc" / "qc.json"
    report.write_text("{}")
    assert outbox.enqueue("key", [*files, report]) == 3
    assert outbox.enqueue("key", [*files, report]) == 0
    while outbox.deliver_next("d"):
        pass
    assert outbox.counts()[WorkState.DONE] == 3
    copied = sorted(p.name for p in (target / "abc").iterdir())
    assert copied == sorted(p.name for p in [*files, report])
    assert (target / "abc" / files[0].name).read_bytes() == files[0].read_bytes()


def test_dicom_destination_takes_only_dicom_and_retries_then_fails(tmp_path: Path) -> None:
    closed = DestinationSettings(
        name="pacs", kind="dicom", host="127.0.0.1", port=free_port(), ae_title="NOBODY"
    )
    outbox = make_outbox(tmp_path, [closed])
    files = write_series(tmp_path / "out" / "abc", 1)
    report = tmp_path / "out" / "abc" / "qc.json"
    report.write_text("{}")
    assert outbox.enqueue("key", [*files, report]) == 1
    assert outbox.deliver_next("d")
    (row,) = outbox.rows()
    assert row.state == WorkState.PENDING and row.attempts == 1
    assert "association" in (row.last_error or "")
    assert outbox.deliver_next("d")
    assert not outbox.deliver_next("d")
    (row,) = outbox.rows()
    assert row.state == WorkState.FAILED and row.attempts == 2
