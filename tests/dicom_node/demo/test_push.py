"""The demo's simulated scanner sends a series again when an association fails part-way, as a
real scanner's send queue does, and the listener ends up with every instance exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.node_helpers import write_series

import dicom_node.demo.node as demo_node
from dicom_node.deliver.items import DeliveryError
from dicom_node.demo.node import PUSH_ATTEMPTS, DemoNode, free_loopback_port
from dicom_node.demo.scenario import demo_settings


def test_a_failed_association_is_sent_again_and_every_instance_arrives_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = write_series(tmp_path / "scanner", 6)
    real_send = demo_node.send_dicom
    calls: list[int] = []

    def stalls_after_half(sent, destination, calling_ae, timeout_s):  # type: ignore[no-untyped-def]
        calls.append(len(sent))
        if len(calls) == 1:  # the first association stores half, then "no response"
            real_send(sent[:3], destination, calling_ae, timeout_s)
            raise DeliveryError("'demo-listener' did not store 00004.dcm: no response")
        real_send(sent, destination, calling_ae, timeout_s)

    monkeypatch.setattr(demo_node, "send_dicom", stalls_after_half)
    retries: list[int] = []
    settings = demo_settings(tmp_path / "data", free_loopback_port())
    with DemoNode(settings, lambda _job, _stage: None) as node:
        node.push(files, retries.append)
        stats = node.listener.stats.snapshot()
    assert calls == [6, 6] and retries == [2]
    assert stats == {"stored": 6, "duplicate": 3}
    assert len(list((tmp_path / "data" / "spool").rglob("*.dcm"))) == 6


def test_the_scanner_gives_up_after_its_last_attempt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def always_fails(*_args):  # type: ignore[no-untyped-def]
        raise DeliveryError("association to 'demo-listener' was rejected")

    monkeypatch.setattr(demo_node, "send_dicom", always_fails)
    retries: list[int] = []
    settings = demo_settings(tmp_path / "data", free_loopback_port())
    with (
        DemoNode(settings, lambda _job, _stage: None) as node,
        pytest.raises(DeliveryError, match="rejected"),
    ):
        node.push(write_series(tmp_path / "scanner", 2), retries.append)
    assert retries == list(range(2, PUSH_ATTEMPTS + 1))
