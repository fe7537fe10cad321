"""Day-one history, end to end: from the newest visit's arrival to its amended report.

Run: ``.venv/bin/python benchmarks/priors_amendment.py [--keep DIR]``.

A throw-away Orthanc (the Debian package) plays the PACS and holds three earlier visits of a
patient (simulated 3 mm head phantom, 2 echoes, Siemens series). The node runs in this
process as `serve` composes it: listener + intake, the prior fetch thread, and one worker
(here a loop in the main thread rather than a spawned process, so the first compile is paid
once, as by a service that has been running). The newest visit is sent by C-STORE; the node
processes it, finds no comparable prior, queues a fetch, C-MOVEs the three visits to itself,
processes them as back-filled visits, and the amendment path re-issues the newest report.
Segmentation uses the phantom's true labels (external labels), so the time is that of
reconstruction, measurement, tracking, retrieval and amendment, not of atlas registration.

Prints the time from the end of the C-STORE of the newest visit to: its first report, the
fetch done, and its report amended with all three priors (previous = 2025, baseline = 2023),
with the number of amendments issued on the way (one per back-filled visit processed after it).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # Orthanc helpers
from support.node_helpers import free_port  # noqa: E402
from support.node_peers import running_orthanc  # noqa: E402
from support.phantom_labels import write_true_labels  # noqa: E402

from dicom_node.deliver.sender import send_dicom  # noqa: E402
from dicom_node.priors.runner import PriorFetcher  # noqa: E402
from dicom_node.process.worker import Worker  # noqa: E402
from dicom_node.queue.results import results_for_study  # noqa: E402
from dicom_node.receive.listener import Listener  # noqa: E402
from dicom_node.service.serve import Service  # noqa: E402
from dicom_node.synthetic.modules import PatientIdentity  # noqa: E402
from dicom_node.synthetic.series import write_acquisition_series  # noqa: E402
from monitor.phantom import PhantomConfig, simulate_phantom  # noqa: E402
from monitor.settings import DestinationSettings, load_settings  # noqa: E402

HEAD = PhantomConfig(
    shape=(48, 56, 40), voxel_mm=(3.0, 3.0, 3.0), n_echoes=2, field_margin_mm=9.0, supersample=False
)
PATIENT = "BENCH-PRIORS-1"
EARLIER = [
    PatientIdentity(patient_id=PATIENT, study_date=f"{year}0301", accession_number=f"B{year}")
    for year in (2023, 2024, 2025)
]
NEWEST = PatientIdentity(patient_id=PATIENT, study_date="20260301", accession_number="B2026")
TIMEOUT_S = 1800.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="keep data and Orthanc storage here")
    args = parser.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        run(args.keep)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            run(Path(tmp))


def _phantom_files(root: Path) -> tuple[dict[str, list[Path]], Path]:
    """Every visit as a Siemens study of the same phantom, and its true labels (aseg codes)."""
    phantom = simulate_phantom(HEAD, 0)
    files = {
        identity.study_uid: write_acquisition_series(
            phantom.acquisition, root / identity.accession_number, "siemens", identity
        )
        for identity in (*EARLIER, NEWEST)
    }
    return files, write_true_labels(phantom, root / "aseg.nii.gz")


def run(root: Path) -> None:
    files, labels = _phantom_files(root)
    node_port = free_port()
    with running_orthanc(root, {"qsm": ("QSMMON", node_port)}) as pacs, pacs.client() as client:
        for identity in EARLIER:
            for path in files[identity.study_uid]:
                client.post("/instances", content=path.read_bytes()).raise_for_status()
        settings = load_settings(
            None,
            storage={"data_dir": root / "data"},
            node={"port": node_port, "stable_after_s": 1.0},
            jobs={"backoff_s": 0.0},
            recon={"tv_iterations": 30},
            segmentation={"method": "external", "external_path": labels},
            destinations=[pacs.destination(outputs=[])],
            priors={"enabled": True, "source": "pacs", "poll_interval_s": 0.2},
        )
        timings = _serve_and_measure(settings, files[NEWEST.study_uid])
    for what, seconds in timings.items():
        print(f"| {what} | {seconds} |")


def _serve_and_measure(settings, newest: list[Path]) -> dict[str, str]:  # type: ignore[no-untyped-def]
    service = Service(settings)
    listener = Listener(settings, service.on_series_complete, sessions=service.sessions)
    worker = Worker(settings, service.queue, service.outbox, "bench:worker")
    fetcher = PriorFetcher(settings, service.sessions, "bench:priors")
    stop = threading.Event()
    thread = threading.Thread(target=fetcher.run, args=(stop,), name="prior-fetcher")
    node = DestinationSettings(
        name="node", kind="dicom", host="127.0.0.1", port=settings.node.port, ae_title="QSMMON"
    )
    marks: dict[str, str] = {}
    with listener:
        thread.start()
        try:
            send_dicom(newest, node, "SCANNER", 60.0)
            start = time.monotonic()
            while "amended report with all three priors" not in marks:
                if time.monotonic() - start > TIMEOUT_S:
                    raise SystemExit(f"no amended report within {TIMEOUT_S:.0f} s")
                if not worker.run_once():
                    time.sleep(0.2)
                _mark(marks, service, fetcher, f"{time.monotonic() - start:.1f} s")
        finally:
            stop.set()
            thread.join()
    service.engine.dispose()
    return marks


def _mark(marks: dict[str, str], service: Service, fetcher: PriorFetcher, elapsed: str) -> None:
    """Note each milestone the first time it is seen (checked between worker jobs, so a
    milestone reached while a job runs is noted when that job ends)."""
    records = [r.record for r in results_for_study(service.sessions, NEWEST.study_uid)]
    if records:
        marks.setdefault("newest visit reported (no prior yet)", elapsed)
    if fetcher.fetches.counts()["done"]:
        marks.setdefault("prior fetch done (3 visits C-MOVEd), noted by", elapsed)
    latest = records[-1] if records else {}
    if (latest.get("previous_study_uid"), latest.get("baseline_study_uid")) == (
        EARLIER[2].study_uid,
        EARLIER[0].study_uid,
    ):
        marks["amended report with all three priors"] = elapsed
        marks["amendments issued for the newest visit"] = str(len(records) - 1)


if __name__ == "__main__":
    main()
