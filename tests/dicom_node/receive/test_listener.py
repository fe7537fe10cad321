"""The DICOM listener against real DCMTK peers (echoscu/storescu) on a loopback port."""

from __future__ import annotations

import errno
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.uid import (
    UID,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    MRImageStorage,
    RLELossless,
    generate_uid,
)
from pynetdicom import AE
from sqlalchemy import func, select
from support.node_helpers import echoscu, free_port, mr_dataset, storescu, write_series

import dicom_node.receive.spool
from dicom_node.receive.catalogue import Instance, Series
from dicom_node.receive.listener import Listener
from monitor.settings import Settings, load_settings

StartListener = Callable[..., Listener]


@pytest.fixture
def start_listener(tmp_path: Path) -> Iterator[StartListener]:
    """Start a listener on a free port with per-test node settings; stopped after the test."""
    started: list[Listener] = []

    def start(on_complete: Any = None, **node: Any) -> Listener:
        settings = load_settings(
            node={"port": free_port(), "stable_after_s": 60.0, **node},
            storage={"data_dir": tmp_path / "data"},
        )
        listener = Listener(settings, on_complete)
        listener.start()
        started.append(listener)
        return listener

    yield start
    for listener in started:
        listener.stop()


def port_of(listener: Listener) -> int:
    return listener.settings.node.port


def catalogued(listener: Listener) -> int:
    with listener.sessions() as session:
        return int(session.scalar(select(func.count(Instance.id))) or 0)


def assert_still_serving(listener: Listener, tmp_path: Path) -> None:
    files = write_series(tmp_path / f"probe-{time.monotonic_ns()}", 1)
    result = storescu(port_of(listener), files)
    assert result.returncode == 0, result.stderr
    assert "Received Store Response (Success)" in result.stderr


def test_echo_succeeds(start_listener: StartListener) -> None:
    listener = start_listener()
    result = echoscu(port_of(listener))
    assert result.returncode == 0, result.stderr
    assert listener.stats.snapshot()["echoes"] == 1


def test_unknown_calling_ae_is_rejected(start_listener: StartListener) -> None:
    listener = start_listener(allowed_calling_ae=["SCANNER"])
    refused = echoscu(port_of(listener), calling_ae="INTRUDER")
    assert refused.returncode != 0
    assert "Rejected" in refused.stderr
    assert echoscu(port_of(listener), calling_ae="SCANNER").returncode == 0
    assert listener.stats.snapshot()["rejected_associations"] == 1


def test_the_health_check_ae_may_echo_from_loopback_but_never_store(
    start_listener: StartListener, tmp_path: Path
) -> None:
    """An allow-list must not break the node's own health check, nor open a back door."""
    listener = start_listener(allowed_calling_ae=["SCANNER"])
    assert echoscu(port_of(listener), calling_ae="QSMSTATUS").returncode == 0

    refused = storescu(port_of(listener), write_series(tmp_path / "s", 1), calling_ae="QSMSTATUS")

    assert "Store Response (Unknown Status: 0x124)" in refused.stderr  # Refused: Not Authorized
    assert catalogued(listener) == 0


def test_calling_ae_pinned_to_another_network_is_rejected(start_listener: StartListener) -> None:
    listener = start_listener(
        calling_ae_addresses={"SCANNER": ["10.1.0.0/16"], "PACS": ["127.0.0.0/8"]}
    )
    assert echoscu(port_of(listener), calling_ae="SCANNER").returncode != 0
    assert echoscu(port_of(listener), calling_ae="PACS").returncode == 0
    assert echoscu(port_of(listener), calling_ae="OTHER").returncode == 0


def test_associations_beyond_the_limit_are_refused(start_listener: StartListener) -> None:
    listener = start_listener(max_associations=1)
    scu = AE(ae_title="HOLDER")
    scu.add_requested_context("1.2.840.10008.1.1")
    held = scu.associate("127.0.0.1", port_of(listener), ae_title="QSMMON")
    assert held.is_established
    try:
        assert echoscu(port_of(listener)).returncode != 0
    finally:
        held.release()
    assert echoscu(port_of(listener)).returncode == 0


def test_random_bytes_on_the_port_then_a_valid_store_works(
    start_listener: StartListener, tmp_path: Path
) -> None:
    listener = start_listener()
    junk = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    for payload in (junk, b"\x01\x00" + junk, b""):
        with socket.create_connection(("127.0.0.1", port_of(listener)), timeout=5) as sock:
            sock.sendall(payload)
    assert_still_serving(listener, tmp_path)
    assert catalogued(listener) == 1


def test_truncated_data_is_refused_and_node_keeps_serving(
    start_listener: StartListener, tmp_path: Path
) -> None:
    """DCMTK will not send a truncated file, so pynetdicom streams the raw bytes instead."""
    listener = start_listener()
    whole = write_series(tmp_path / "whole", 1, size=32)[0]
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(whole.read_bytes()[:-1500])
    scu = AE(ae_title="SCANNER")
    scu.add_requested_context(pydicom.dcmread(whole).SOPClassUID, "1.2.840.10008.1.2.1")
    assoc = scu.associate("127.0.0.1", port_of(listener), ae_title="QSMMON")
    assert assoc.is_established
    status = assoc.send_c_store(cut)
    assoc.release()
    assert status.Status != 0x0000
    assert catalogued(listener) == 0
    assert_still_serving(listener, tmp_path)


def test_object_without_pixel_data_is_refused_and_node_keeps_serving(
    start_listener: StartListener, tmp_path: Path
) -> None:
    listener = start_listener()
    path = tmp_path / "nopixels.dcm"
    mr_dataset(generate_uid(), generate_uid(), with_pixels=False).save_as(
        path, enforce_file_format=True
    )
    result = storescu(port_of(listener), [path])
    assert "Received Store Response (Error" in result.stderr
    assert catalogued(listener) == 0
    assert_still_serving(listener, tmp_path)


def test_resend_is_idempotent(start_listener: StartListener, tmp_path: Path) -> None:
    listener = start_listener()
    files = write_series(tmp_path / "series", 3)
    for _ in range(2):
        result = storescu(port_of(listener), files)
        assert result.stderr.count("Received Store Response (Success)") == 3
    assert catalogued(listener) == 3
    with listener.sessions() as session:
        assert session.scalars(select(Series.instance_count)).one() == 3
    counts = listener.stats.snapshot()
    assert (counts["stored"], counts["duplicate"]) == (3, 3)


def test_disk_write_error_answers_out_of_resources(
    start_listener: StartListener, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(path: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    listener = start_listener()
    monkeypatch.setattr(dicom_node.receive.spool, "write_durably_once", disk_full)
    result = storescu(port_of(listener), write_series(tmp_path / "series", 1))
    assert "Refused: OutOfResources" in result.stderr  # DCMTK's name for 0xA700
    assert "Success" not in result.stderr
    assert catalogued(listener) == 0


def test_non_mr_objects_are_acknowledged_and_dropped(
    start_listener: StartListener, tmp_path: Path
) -> None:
    listener = start_listener()
    ds = mr_dataset(generate_uid(), generate_uid())
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.Modality = "CT"
    path = tmp_path / "ct.dcm"
    ds.save_as(path, enforce_file_format=True)
    result = storescu(port_of(listener), [path])
    assert "Received Store Response (Success)" in result.stderr
    assert catalogued(listener) == 0
    assert listener.stats.snapshot()["dropped"] == 1


@pytest.mark.parametrize(
    ("syntax", "propose"),
    [
        (JPEGLSLossless, "-xt"),
        (RLELossless, "-xr"),
        (JPEG2000Lossless, "-xv"),
        (DeflatedExplicitVRLittleEndian, "-xd"),
    ],
    ids=["jpeg-ls", "rle", "j2k", "deflated"],
)
def test_compressed_instance_is_kept_as_sent_and_decodes(
    start_listener: StartListener, tmp_path: Path, syntax: UID, propose: str
) -> None:
    listener = start_listener()
    ds = mr_dataset(generate_uid(), generate_uid(), size=32)  # OpenJPEG: 6 levels need >= 32 px
    original = ds.pixel_array.copy()
    if syntax.is_compressed:
        ds.compress(syntax)  # storescu sends compressed files as stored
    path = tmp_path / "compressed.dcm"
    ds.save_as(path, enforce_file_format=True)
    result = storescu(port_of(listener), [path], propose)
    assert "Received Store Response (Success)" in result.stderr, result.stderr
    with listener.sessions() as session:
        spooled = Path(session.scalars(select(Instance.path)).one())
    received = pydicom.dcmread(spooled)
    assert received.file_meta.TransferSyntaxUID == syntax
    np.testing.assert_array_equal(received.pixel_array, original)


def test_completion_hook_fires_when_expected_count_is_reached(
    start_listener: StartListener, tmp_path: Path
) -> None:
    announced: list[tuple[str, str]] = []
    listener = start_listener(on_complete=lambda study, series: announced.append((study, series)))
    files = write_series(tmp_path / "series", 3, images_in_acquisition=3)
    assert storescu(port_of(listener), files).returncode == 0
    deadline = time.monotonic() + 10
    while not announced and time.monotonic() < deadline:
        time.sleep(0.05)
    first = pydicom.dcmread(files[0])
    assert announced == [(first.StudyInstanceUID, first.SeriesInstanceUID)]


def _self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    """An EC key and self-signed certificate made with the openssl CLI (fast, no CA)."""
    key, cert = folder / f"{name}.key", folder / f"{name}.crt"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", f"/CN={name}",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return key, cert


def test_tls_echo_with_client_certificate(start_listener: StartListener, tmp_path: Path) -> None:
    server_key, server_cert = _self_signed(tmp_path, "server")
    client_key, client_cert = _self_signed(tmp_path, "client")
    listener = start_listener(
        tls={
            "enabled": True,
            "cert_file": server_cert,
            "key_file": server_key,
            "client_ca_file": client_cert,
        }
    )
    port = port_of(listener)
    with socket.create_connection(("127.0.0.1", port)):  # a silent client must not block others
        secured = echoscu(port, "+tls", str(client_key), str(client_cert), "+cf", str(server_cert))
    assert secured.returncode == 0, secured.stderr
    anonymous = echoscu(port, "+tla", "+cf", str(server_cert))
    assert anonymous.returncode != 0
    plain = echoscu(port)
    assert plain.returncode != 0
    assert listener.stats.snapshot()["echoes"] == 1


def test_settings_reject_tls_without_key() -> None:
    with pytest.raises(ValueError, match="cert_file and key_file"):
        Settings(node={"tls": {"enabled": True, "cert_file": "server.crt"}})


def test_a_refused_instance_says_why_in_its_error_comment(start_listener: StartListener) -> None:
    listener = start_listener()
    ds = mr_dataset(generate_uid(), generate_uid())
    ds.PixelData = ds.PixelData * 100  # 50 MB behind a 4x4 image, in miniature
    scu = AE(ae_title="SCANNER")
    scu.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = scu.associate("127.0.0.1", port_of(listener), ae_title="QSMMON")
    assert assoc.is_established
    try:
        status = assoc.send_c_store(ds)
    finally:
        assoc.release()
    assert status.Status == 0xA900
    assert status.ErrorComment == "oversized pixel data"
    assert catalogued(listener) == 0


def test_an_association_to_another_called_ae_is_refused(start_listener: StartListener) -> None:
    listener = start_listener()
    scu = AE(ae_title="SCANNER")
    scu.add_requested_context("1.2.840.10008.1.1")
    misrouted = scu.associate("127.0.0.1", port_of(listener), ae_title="OTHERNODE")
    assert misrouted.is_rejected
    assert start_listener(require_called_ae=False)  # a site may switch the check off


def test_idle_connections_from_one_address_cannot_lock_others_out(
    start_listener: StartListener,
) -> None:
    """The lock-out attack: open every slot with silent TCP connections. Each address gets
    its share; a scanner on another address still associates."""
    listener = start_listener(max_associations=4, max_associations_per_address=2)
    idle = []
    try:
        for _ in range(10):
            sock = socket.create_connection(("127.0.0.1", port_of(listener)), timeout=5)
            idle.append(sock)
        time.sleep(0.5)  # let the server threads register the held connections
        scu = AE(ae_title="SCANNER")
        scu.add_requested_context("1.2.840.10008.1.1")
        scanner = scu.associate(
            "127.0.0.1", port_of(listener), ae_title="QSMMON", bind_address=("127.0.0.2", 0)
        )
        assert scanner.is_established
        assert scanner.send_c_echo().Status == 0x0000
        scanner.release()
    finally:
        for sock in idle:
            sock.close()
    assert listener.stats.snapshot()["refused_connections"] >= 8


def test_a_conflicting_duplicate_is_refused_with_its_reason(start_listener: StartListener) -> None:
    listener = start_listener()
    first = mr_dataset(generate_uid(), generate_uid())
    other = mr_dataset(first.StudyInstanceUID, first.SeriesInstanceUID, instance_number=2)
    other.SOPInstanceUID = first.SOPInstanceUID
    scu = AE(ae_title="SCANNER")
    scu.add_requested_context(first.SOPClassUID, first.file_meta.TransferSyntaxUID)
    assoc = scu.associate("127.0.0.1", port_of(listener), ae_title="QSMMON")
    try:
        statuses = [assoc.send_c_store(ds) for ds in (first, first, other)]
    finally:
        assoc.release()
    assert [s.Status for s in statuses] == [0x0000, 0x0000, 0x0111]
    assert statuses[2].ErrorComment == "conflicting duplicate kept first"
    assert catalogued(listener) == 1


def test_a_corrupted_element_is_refused_before_it_is_acknowledged(
    start_listener: StartListener, tmp_path: Path
) -> None:
    """A bit flip making a VR "ZZ" once passed the listener (only a few elements were read),
    was acknowledged, and then stalled its study in assembly."""
    listener = start_listener()
    path = write_series(tmp_path / "s", 1)[0]
    ds = pydicom.dcmread(path)
    ds.PatientPosition = "HFS"  # an element the listener itself never reads
    ds.save_as(path)
    raw = path.read_bytes()
    element = b"\x18\x00\x00\x51CS"  # (0018,5100) Patient Position, explicit VR CS
    assert element in raw
    path.write_bytes(raw.replace(element, b"\x18\x00\x00\x51ZZ", 1))
    scu = AE(ae_title="SCANNER")
    scu.add_requested_context(MRImageStorage, "1.2.840.10008.1.2.1")
    assoc = scu.associate("127.0.0.1", port_of(listener), ae_title="QSMMON")
    try:
        status = assoc.send_c_store(path)  # sent as stored: pynetdicom does not re-encode it
    finally:
        assoc.release()
    assert status.Status == 0xC210
    assert status.ErrorComment == "undecodable"
    assert catalogued(listener) == 0
