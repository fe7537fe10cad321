"""Day-one history, end to end: a node with an empty history receives a patient's newest visit,
fetches the three earlier ones from a real Orthanc and amends the newest report.

Shared by `tests/dicom_node/priors/test_day_one_history.py` (asserts the outcome) and
`benchmarks/priors_amendment.py` (prints the times). The node runs in-process as `serve`
composes it: listener + intake, the prior fetch thread, and one worker driven in a loop here
(so the first JAX compile is paid once, as by a running service). Segmentation uses the
phantom's true labels (external labels): the path under test is retrieval, reconstruction,
tracking and amendment, not atlas registration.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dicom_node.deliver.sender import send_dicom
from dicom_node.priors.runner import PriorFetcher
from dicom_node.process.worker import Worker
from dicom_node.queue.results import results_for_study
from dicom_node.receive.listener import Listener
from dicom_node.service.serve import Service
from dicom_node.synthetic.modules import PatientIdentity
from dicom_node.synthetic.series import write_acquisition_series
from monitor.phantom import PhantomConfig, simulate_phantom
from monitor.settings import DestinationSettings, load_settings
from support.node_helpers import free_port
from support.node_peers import running_orthanc
from support.phantom_labels import write_true_labels

__all__ = ["EARLIER", "NEWEST", "DayOne", "run_day_one"]

HEAD = PhantomConfig(
    shape=(48, 56, 40), voxel_mm=(3.0, 3.0, 3.0), n_echoes=2, field_margin_mm=9.0, supersample=False
)
PATIENT = "DAY-ONE-1"
EARLIER = tuple(
    PatientIdentity(patient_id=PATIENT, study_date=f"{year}0301", accession_number=f"B{year}")
    for year in (2023, 2024, 2025)
)
NEWEST = PatientIdentity(patient_id=PATIENT, study_date="20260301", accession_number="B2026")
OTHER = PatientIdentity(patient_id="DAY-ONE-OTHER", study_date="20250601", accession_number="O1")


@dataclass
class DayOne:
    """What the run saw: milestone times (s after the newest C-STORE) and the final state."""

    marks: dict[str, float] = field(default_factory=dict)
    newest_records: list[dict[str, Any]] = field(default_factory=list)
    """Every stored result of the newest visit, first report then its amendments."""
    processed_studies: set[str] = field(default_factory=set)


def run_day_one(root: Path, timeout_s: float = 1800.0) -> DayOne:
    """Preload Orthanc with the earlier visits (and another patient), send the newest visit
    to the node and serve until its report is amended with all three priors."""
    phantom = simulate_phantom(HEAD, 0)
    files = {
        identity.study_uid: write_acquisition_series(
            phantom.acquisition, root / identity.accession_number, "siemens", identity
        )
        for identity in (*EARLIER, NEWEST, OTHER)
    }
    labels = write_true_labels(phantom, root / "aseg.nii.gz")
    node_port = free_port()
    with running_orthanc(root, {"qsm": ("QSMMON", node_port)}) as pacs, pacs.client() as client:
        for identity in (*EARLIER, OTHER):
            for path in files[identity.study_uid]:
                client.post("/instances", content=path.read_bytes()).raise_for_status()
        settings = load_settings(
            None,
            storage={"data_dir": root / "data"},
            node={"port": node_port, "stable_after_s": 1.0},
            jobs={"backoff_s": 0.0},
            segmentation={"method": "external", "external_path": labels},
            destinations=[pacs.destination(outputs=[])],
            priors={"enabled": True, "source": "pacs", "poll_interval_s": 0.2},
        )
        return _serve(settings, files[NEWEST.study_uid], timeout_s)


def _serve(settings, newest: list[Path], timeout_s: float) -> DayOne:  # type: ignore[no-untyped-def]
    service = Service(settings)
    listener = Listener(settings, service.on_series_complete, sessions=service.sessions)
    worker = Worker(settings, service.queue, service.outbox, "day-one:worker")
    fetcher = PriorFetcher(settings, service.sessions, "day-one:priors")
    stop = threading.Event()
    thread = threading.Thread(target=fetcher.run, args=(stop,), name="prior-fetcher")
    node = DestinationSettings(
        name="node", kind="dicom", host="127.0.0.1", port=settings.node.port, ae_title="QSMMON"
    )
    seen = DayOne()
    with listener:
        thread.start()
        try:
            send_dicom(newest, node, "SCANNER", 60.0)
            start = time.monotonic()
            while "amended with all three priors" not in seen.marks:
                if time.monotonic() - start > timeout_s:
                    raise TimeoutError(f"no amended report within {timeout_s:.0f} s: {seen.marks}")
                if not worker.run_once():
                    time.sleep(0.2)
                _note(seen, service, fetcher, time.monotonic() - start)
        finally:
            stop.set()
            thread.join()
    seen.processed_studies = {job.study_uid for job in service.queue.recent(limit=100)}
    service.engine.dispose()
    return seen


def _note(seen: DayOne, service: Service, fetcher: PriorFetcher, elapsed: float) -> None:
    """Each milestone the first time it is seen (checked between worker jobs)."""
    seen.newest_records = [r.record for r in results_for_study(service.sessions, NEWEST.study_uid)]
    if seen.newest_records:
        seen.marks.setdefault("newest visit reported (no prior yet)", elapsed)
    if fetcher.fetches.counts()["done"]:
        seen.marks.setdefault("prior fetch done (3 visits C-MOVEd), noted by", elapsed)
    latest = seen.newest_records[-1] if seen.newest_records else {}
    if (latest.get("previous_study_uid"), latest.get("baseline_study_uid")) == (
        EARLIER[2].study_uid,
        EARLIER[0].study_uid,
    ):
        seen.marks["amended with all three priors"] = elapsed
