"""Shared pieces of the delivery tests: an outbox over a fresh database, an acquisition's
output folder made of real DICOM/JSON files, and a loopback HTTP receiver that records POSTs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from dicom_node.db import create_schema, database_url, make_engine
from dicom_node.deliver.outbox import Outbox
from dicom_node.queue.results import add_result_once
from dicom_node.synthetic.modules import PatientIdentity
from dicom_node.synthetic.series import write_acquisition_series
from monitor.settings import Settings, load_settings
from monitor.types import GYROMAGNETIC_HZ_PER_T, Acquisition, b0_direction_in_voxel_axes
from support.node_acquisitions import axial_affine
from support.node_helpers import write_series
from support.recon_simulation import SHAPE, VOXEL_MM, make_phantom

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


def make_outbox(settings: Settings, db_url: str | None = None) -> Outbox:
    """The outbox on `db_url` (a test's SQLite or PostgreSQL database), else the configured one."""
    url = db_url or database_url(settings.storage.data_dir, settings.storage.database_url)
    return Outbox(create_schema(make_engine(url)), settings)


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


LABEL_CHI_PPM = {"putamen": 0.08, "globus_pallidus": 0.18, "thalamus": 0.12, "caudate": 0.15}
"""Which nuclei of the reconstruction test phantom stand in for our four structures (the
phantom's red nucleus and substantia nigra play thalamus and caudate: only labels matter)."""
LABEL_VALUES = {
    f"{name}_{side}": [10 * (i + 1) + (0 if side == "left" else 1)]
    for i, name in enumerate(LABEL_CHI_PPM)
    for side in ("left", "right")
}


def small_study(folder: Path, identity: PatientIdentity) -> tuple[list[Path], Path]:
    """A 64x64x48 multi-echo study of the reconstruction test phantom written as Siemens
    DICOM, plus an external label NIfTI on its grid (atlas registration costs a minute; the
    delivery tests need reportable numbers, not registration)."""
    affine = axial_affine(VOXEL_MM)
    phantom = make_phantom(b0_direction_in_voxel_axes(affine), seed=1)
    te_s = (0.004, 0.010, 0.016)
    rad_per_ppm_s = 2 * np.pi * GYROMAGNETIC_HZ_PER_T * 3.0 * 1e-6
    phase = np.stack([phantom.total_field_ppm * rad_per_ppm_s * te for te in te_s], axis=-1)
    magnitude = np.stack([phantom.magnitude * np.exp(-te / 0.05) for te in te_s], axis=-1)
    acq = Acquisition(
        magnitude=1000.0 * magnitude + 1.0,
        phase_rad=np.angle(np.exp(1j * phase)),
        te_s=te_s,
        voxel_mm=VOXEL_MM,
        b0_tesla=3.0,
        b0_dir_voxel=b0_direction_in_voxel_axes(affine),
        affine_ras=affine,
        label="delivery-test",
    )
    files = write_acquisition_series(acq, folder / "dicom", "siemens", identity)
    left = (np.arange(SHAPE[0]) < SHAPE[0] / 2)[:, None, None]
    labels = np.zeros(SHAPE, dtype=np.int16)
    for name, chi_ppm in LABEL_CHI_PPM.items():
        nucleus = np.isclose(phantom.chi_ppm, chi_ppm)
        labels[nucleus & left] = LABEL_VALUES[f"{name}_left"][0]
        labels[nucleus & ~left] = LABEL_VALUES[f"{name}_right"][0]
    label_path = folder / "labels.nii.gz"
    nib.save(nib.Nifti1Image(labels, affine), label_path)
    return files, label_path


def segmentation_config(label_path: Path) -> str:
    """TOML for external labels from `small_study` (its nuclei are smaller than real ones)."""
    labels = ", ".join(f"{name} = {values}" for name, values in LABEL_VALUES.items())
    ranges = ", ".join(f"{name} = [0.0, 100.0]" for name in LABEL_CHI_PPM)
    return f"""
[segmentation]
method = "external"
external_path = "{label_path}"
external_labels = {{ {labels} }}
volume_ranges_ml = {{ {ranges} }}
"""


QSM_MONITOR = Path(sys.executable).parent / "qsm-monitor"


@contextmanager
def serving(config: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`qsm-monitor serve` in its own process group: stopped with SIGTERM (a clean stop must
    exit 0), killed with its workers if it does not stop."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [str(QSM_MONITOR), "serve", "--config", str(config)],
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    try:
        yield proc
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    except BaseException:
        print(log.read_text(errors="replace")[-6000:])  # the service's side, in pytest's report
        raise
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
