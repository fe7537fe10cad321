"""Images larger than one PDU must not wait for the peer's delayed TCP acknowledgements.

Each test times the same transfer twice in one run, with our socket options and without
them: the stall is a fixed kernel timer (up to 40 ms per image), so the ratio holds on a
busy machine where absolute times do not.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
from support.node_helpers import STORESCU, free_port, write_series

import dicom_node.deliver.sender
import dicom_node.receive.listener
from dicom_node.deliver.sender import send_dicom
from dicom_node.receive.listener import Listener
from dicom_node.tcp import QUICKACK_OPTION
from monitor.settings import DestinationSettings, load_settings

IMAGES = 30
ROWS, COLUMNS, HEADER_PADDING = 96, 80, 1000
"""The demo's 80x96 16-bit images with a scanner-sized header: just over one 16 KB PDU, so
each dataset goes as a full PDU and a short one (where the stall was first seen)."""
MIN_SPEED_UP = 2.5
RUNS = 3
"""Each side is timed this many times and its fastest run compared: a test running beside
CPU-bound ones (pytest -n 2) is slowed by the machine, not by the protocol."""


def _images(folder: Path) -> list[Path]:
    return write_series(folder, IMAGES, size=ROWS, columns=COLUMNS, comment="x" * HEADER_PADDING)


pytestmark = pytest.mark.skipif(QUICKACK_OPTION is None, reason="TCP_QUICKACK is Linux only")


def _listener(tmp_path: Path, name: str) -> Listener:
    settings = load_settings(
        node={"port": free_port(), "stable_after_s": 60.0},
        storage={"data_dir": tmp_path / name},
    )
    listener = Listener(settings)
    listener.start()
    return listener


def _storescu_as_shipped(port: int, files: list[Path]) -> subprocess.CompletedProcess[str]:
    """DCMTK's storescu with Nagle on (no TCP_NODELAY variable), as most senders run."""
    env = {name: value for name, value in os.environ.items() if name != "TCP_NODELAY"}
    args = [STORESCU, "-v", "-aet", "SCANNER", "-aec", "QSMMON", "127.0.0.1", str(port)]
    return subprocess.run(
        [*args, *map(str, files)], capture_output=True, text=True, timeout=120, env=env
    )


def test_listener_acknowledges_promptly_so_storescu_does_not_stall(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = _images(tmp_path / "images")

    def push(listener: Listener) -> float:
        try:
            started = time.perf_counter()
            result = _storescu_as_shipped(listener.settings.node.port, files)
            seconds = time.perf_counter() - started
        finally:
            listener.stop()
        assert result.returncode == 0, result.stderr
        assert result.stderr.count("Received Store Response (Success)") == IMAGES
        return seconds

    tuned = min(push(_listener(tmp_path, f"tuned-{run}")) for run in range(RUNS))
    monkeypatch.setattr(dicom_node.receive.listener, "PROMPT_ACK_HANDLERS", [])
    untuned = min(push(_listener(tmp_path, f"untuned-{run}")) for run in range(RUNS))
    print(f"\nstorescu {IMAGES} images: {tuned:.2f} s tuned, {untuned:.2f} s untuned")
    assert untuned >= MIN_SPEED_UP * tuned


def test_our_sender_switches_nagle_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = _images(tmp_path / "images")
    # A listener without prompt acknowledgements: only the sender's own option can help.
    monkeypatch.setattr(dicom_node.receive.listener, "PROMPT_ACK_HANDLERS", [])
    seen: list[int] = []
    real_option = dicom_node.deliver.sender.send_without_delay

    def recording(assoc) -> None:
        real_option(assoc)
        raw = assoc.dul.socket.socket
        seen.append(raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    def deliver(name: str) -> float:
        listener = _listener(tmp_path, name)
        node = listener.settings.node
        destination = DestinationSettings(
            name="ours", kind="dicom", host=node.host, port=node.port, ae_title=node.ae_title
        )
        try:
            started = time.perf_counter()
            send_dicom(files, destination, "SENDER", 30.0)
            return time.perf_counter() - started
        finally:
            listener.stop()

    monkeypatch.setattr(dicom_node.deliver.sender, "send_without_delay", recording)
    tuned = min(deliver(f"tuned-{run}") for run in range(RUNS))
    monkeypatch.setattr(dicom_node.deliver.sender, "send_without_delay", lambda assoc: None)
    untuned = min(deliver(f"untuned-{run}") for run in range(RUNS))
    print(f"\nsend_dicom {IMAGES} images: {tuned:.2f} s tuned, {untuned:.2f} s untuned")
    assert seen == [1] * RUNS
    assert untuned >= MIN_SPEED_UP * tuned
