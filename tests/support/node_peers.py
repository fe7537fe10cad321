"""A throwaway Orthanc on loopback ports for node tests, and a polling helper."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from support.node_helpers import free_port

ORTHANC = Path("/usr/sbin/Orthanc")
LOOPBACK = "127.0.0.1"


def wait_for(predicate, timeout_s: float, what: str, interval_s: float = 0.1):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@dataclass(frozen=True)
class OrthancPeer:
    http_url: str
    dicom_port: int
    ae_title: str
    log_path: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.http_url, timeout=30.0)

    def destination(self, name: str = "pacs", **extra: Any) -> dict[str, Any]:
        """This Orthanc as a `dicom` destination table of the settings."""
        return {
            "name": name,
            "kind": "dicom",
            "host": LOOPBACK,
            "port": self.dicom_port,
            "ae_title": self.ae_title,
            **extra,
        }


@contextmanager
def running_orthanc(
    tmp_path: Path,
    modalities: dict[str, tuple[str, int]],
    extra_config: dict[str, Any] | None = None,
    ports: tuple[int, int] | None = None,
) -> Iterator[OrthancPeer]:
    """Start Orthanc on free loopback ports with its own config; modalities: name -> (AE, port).

    `extra_config` adds or overrides configuration keys (e.g. LuaScripts, StableAge).
    `ports` (HTTP, DICOM) and the same `tmp_path` restart a stopped Orthanc with its storage.
    """
    http_port, dicom_port = ports or (free_port(), free_port())
    root = tmp_path / "orthanc"
    root.mkdir(exist_ok=True)
    config = {
        "Name": "test-pacs",
        "StorageDirectory": str(root / "storage"),
        "IndexDirectory": str(root / "index"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": "TESTPACS",
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomCheckCalledAet": False,
        "Plugins": [],
        "DicomModalities": {name: [ae, LOOPBACK, port] for name, (ae, port) in modalities.items()},
        **(extra_config or {}),
    }
    (root / "orthanc.json").write_text(json.dumps(config))
    log = (root / "orthanc.log").open("wb")
    proc = subprocess.Popen([str(ORTHANC), str(root / "orthanc.json")], stdout=log, stderr=log)
    peer = OrthancPeer(
        f"http://{LOOPBACK}:{http_port}", dicom_port, "TESTPACS", root / "orthanc.log"
    )
    try:
        with peer.client() as client:
            wait_for(lambda: _answers(client), 30.0, "Orthanc to answer HTTP")
        yield peer
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _answers(client: httpx.Client) -> bool:
    try:
        return client.get("/system").status_code == 200
    except httpx.HTTPError:
        return False
