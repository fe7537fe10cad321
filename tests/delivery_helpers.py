"""Shared pieces of the delivery tests: an outbox over a fresh database, an acquisition's
output folder made of real DICOM/JSON files, and a loopback HTTP receiver that records POSTs."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from node_helpers import write_series

from dicom_node.db import create_schema, database_url, make_engine
from dicom_node.outbox import Outbox
from dicom_node.results import add_result_once
from monitor.settings import Settings, load_settings

STUDY_UID = "1.2.826.0.1.3680043.8.498.1"
KEY = "acquisition-key"


def delivery_settings(tmp_path: Path, destinations: list[dict[str, Any]], **extra: Any) -> Settings:
    """Fast retries (no backoff, 2 attempts) so retry and dead-letter paths run in-test."""
    return load_settings(
        None,
        storage={"data_dir": tmp_path / "data"},
        destinations=destinations,
        outbox={"backoff_s": 0.0, "max_attempts": 2},
        node={"network_timeout_s": 2.0},
        **extra,
    )


def make_outbox(settings: Settings) -> Outbox:
    return Outbox(create_schema(make_engine(database_url(settings.storage.data_dir))), settings)


def acquisition_outputs(folder: Path, elevated: bool = True) -> dict[str, Path]:
    """An output folder as the emit step leaves it: one SR-like file, a 3-file series, the
    bundle, a PNG and (when elevated) the alert. Real Part 10 files, so a PACS accepts them."""
    (single,) = write_series(folder / "single", 1)
    sr = single.rename(folder / "sr.dcm")
    (folder / "single").rmdir()
    series = folder / "qsm_mr_series"
    write_series(series, 3)
    bundle = folder / "fhir-bundle.json"
    bundle.write_text(json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": []}))
    png = folder / "trend_plot.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n")
    outputs = {"sr": sr, "qsm_mr_series": series, "fhir_bundle": bundle, "trend_plot_png": png}
    if elevated:
        alert = folder / "alert.json"
        alert.write_text(json.dumps({"alert_id": "a1", "level": "elevated", "reasons": ["x"]}))
        outputs["alert"] = alert
    return outputs


def store_result(outbox: Outbox, outputs: dict[str, Path]) -> None:
    """The result row a finished job leaves (what `resend` looks up)."""
    record = {"study_uid": STUDY_UID, "outputs": {n: str(p) for n, p in outputs.items()}}
    with outbox.sessions() as session:
        add_result_once(session, KEY, STUDY_UID, record)
        session.commit()


def drain(outbox: Outbox) -> None:
    while outbox.deliver_next("test"):
        pass


@dataclass
class Recorded:
    """What a loopback HTTP receiver was sent."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200


@contextmanager
def http_receiver() -> Iterator[tuple[str, Recorded]]:
    """A real HTTP server on loopback that records each POST (path, headers, JSON body) and
    answers `Recorded.status`; yields its base URL."""
    recorded = Recorded()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - name fixed by http.server
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            recorded.requests.append(
                {"path": self.path, "headers": dict(self.headers), "json": json.loads(body)}
            )
            self.send_response(recorded.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            """Quiet: test output only shows failures."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", recorded
    finally:
        server.shutdown()
        server.server_close()
