"""`qsm-monitor demo`: the whole mission on one machine, with nothing to configure.

A simulated MS patient (yearly visits; thalamic susceptibility falling, globus pallidus
rising, the direction of the seed study) and a stable healthy control are written as
scanner-like DICOM series, pushed by C-STORE to the real listener on a free loopback port and
processed by the real pipeline (reconstruction, segmentation, measurement, tracking, outputs,
delivery to a folder destination). The demo prints what a clinician and an integrator need to
see: per-visit numbers, the risk assessment with its reasons, and where every output went.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from dicom_node.demo.node import DemoNode, free_loopback_port
from dicom_node.errors import NodeError
from dicom_node.synthetic.modules import PatientIdentity
from dicom_node.synthetic.series import write_acquisition_series
from monitor.phantom import simulate_phantom
from monitor.phantom.cohort import CohortVisit, longitudinal_cohort
from monitor.record import BILATERAL, ProcessingRecord, Risk, Values
from monitor.settings import (
    DestinationSettings,
    JobsSettings,
    NodeSettings,
    OutboxSettings,
    Settings,
    StorageSettings,
)

STUDY_TIMEOUT_S = 900.0
"""Per visit; far above the ~1-2 min a visit takes on 2 cores, so only a hang trips it."""
CONTROL_VISITS = 2
STRUCTURES = ("thalamus", "caudate", "putamen", "globus_pallidus")


class DemoError(NodeError, ValueError):
    """A plain reason the demo cannot run (e.g. a --keep folder that is not empty)."""


def demo_settings(data_dir: Path, port: int) -> Settings:
    """Loopback listener, embedded SQLite, one worker, a folder destination, fast polling."""
    return Settings(
        node=NodeSettings(ae_title="QSMDEMO", host="127.0.0.1", port=port, stable_after_s=2.0),
        storage=StorageSettings(data_dir=data_dir),
        destinations=[
            DestinationSettings(
                name="integration-folder", kind="folder", path=data_dir / "delivered"
            )
        ],
        jobs=JobsSettings(workers=1, max_attempts=1, poll_interval_s=0.2),
        outbox=OutboxSettings(max_attempts=2, backoff_s=1.0, poll_interval_s=0.2),
    )


@dataclass(frozen=True)
class DemoVisit:
    """A cohort visit with its display name and the change that was simulated since the
    subject's previous visit (nominal ppb, before atlas blending and reconstruction)."""

    visit: CohortVisit
    label: str
    simulated_change_ppb: Mapping[str, float]

    @property
    def subject(self) -> str:
        return self.visit.subject


def demo_visits(patient_visits: int) -> list[DemoVisit]:
    """Every visit of both subjects in scan-date order (tracking sees history as it happened)."""
    visits: list[DemoVisit] = []
    previous: dict[str, CohortVisit] = {}
    for visit in longitudinal_cohort(patient_visits, CONTROL_VISITS):
        before = previous.get(visit.subject)
        change = {
            name: value - before.true_chi_ppb[name] if before else 0.0
            for name, value in visit.true_chi_ppb.items()
        }
        date = visit.identity.study_date
        label = f"{visit.subject} {date[:4]}-{date[4:6]}-{date[6:]}"
        visits.append(DemoVisit(visit, label, change))
        previous[visit.subject] = visit
    return sorted(visits, key=lambda v: v.visit.identity.study_date)


@dataclass
class DemoOutcome:
    """Everything the demo processed, for printing and for the exit code."""

    data_dir: Path
    kept: bool = False
    """The folder is the user's --keep folder, not a temporary one."""
    visits: list[tuple[DemoVisit, ProcessingRecord]] = field(default_factory=list)
    deliveries: Mapping[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def failed(self) -> list[str]:
        problems = [
            f"{visit.label}: {record.error}" for visit, record in self.visits if record.error
        ]
        if self.deliveries.get("failed"):
            problems.append(f"{self.deliveries['failed']} deliveries failed")
        return problems


class StageDisplay:
    """One live status line: which visit, which stage, elapsed time of both."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.started = time.monotonic()
        self.visit = ""
        self.stage = ""
        self.stage_started = self.started
        self._status: Any = None

    @contextmanager
    def running(self) -> Iterator[StageDisplay]:
        with self.console.status("starting") as status:
            self._status = status
            yield self

    def set_visit(self, visit: str) -> None:
        self._finish_stage()
        self.visit, self.stage = visit, ""
        self.set_stage("simulating the scan")

    def set_stage(self, stage: str) -> None:
        self._finish_stage()
        self.stage, self.stage_started = stage, time.monotonic()
        self.refresh()

    def _finish_stage(self) -> None:
        """Log the stage that just ended under the visit it belonged to, with its duration."""
        if self.stage:
            elapsed = time.monotonic() - self.stage_started
            self.console.log(f"{self.visit}: {self.stage} ({elapsed:.0f} s)")

    def refresh(self) -> None:
        if self._status is not None:
            now = time.monotonic()
            self._status.update(
                f"{self.visit}: {self.stage} · {now - self.stage_started:.0f} s "
                f"(total {now - self.started:.0f} s)"
            )


def run_demo(patient_visits: int, keep: Path | None, console: Console) -> DemoOutcome:
    """Simulate, push, process and deliver every visit in date order; never raises on a
    processing failure (it is reported in the outcome), only on unusable arguments."""
    if keep is not None and keep.exists() and any(keep.iterdir()):
        raise DemoError(f"--keep folder {keep} is not empty; give a new or empty folder")
    data_dir = keep if keep is not None else Path(tempfile.mkdtemp(prefix="qsm-monitor-demo-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = demo_settings(data_dir, free_loopback_port())
    outcome = DemoOutcome(data_dir=data_dir, kept=keep is not None)
    display = StageDisplay(console)
    started = time.monotonic()
    show_stage = lambda _job, stage: display.set_stage(stage)  # noqa: E731 - one-line adapter
    with display.running(), DemoNode(settings, show_stage) as node:
        for number, shown in enumerate(demo_visits(patient_visits), 1):
            visit = shown.visit
            display.set_visit(shown.label)
            acquisition = simulate_phantom(visit.config, rng=visit.noise_seed).acquisition
            display.set_stage("writing scanner DICOM")
            identity = PatientIdentity(**asdict(visit.identity))
            scanner_dir = data_dir / "scanner" / f"visit-{number}"
            files = write_acquisition_series(acquisition, scanner_dir, "siemens", identity)
            display.set_stage(f"C-STORE of {len(files)} images to the listener")
            node.push(files, lambda n: display.set_stage(f"C-STORE again (attempt {n})"))
            display.set_stage("waiting for the series to complete")
            records = node.process_study(identity.study_uid, STUDY_TIMEOUT_S, display.refresh)
            display.set_stage("delivering outputs")
            outcome.deliveries = node.deliver_all()
            outcome.visits.extend((shown, record) for record in records)
        display.set_stage("done")
    outcome.seconds = time.monotonic() - started
    return outcome


def _number(value: Any, digits: int = 1, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _reliable(value: Any) -> str:
    return "-" if value is None else ("yes" if value else "no")


ILLUSTRATIVE_Z = (
    "z: illustrative only, the phantom's tissue values are not calibrated to the literature "
    "norms (its MS patient starts with a high thalamus, the opposite of the pattern the risk "
    "reasons describe)."
)


def visit_table(outcome: DemoOutcome) -> Table:
    """Visits as row groups (label row, then one row per structure): fits 80 columns."""
    table = Table(
        title="Deep grey matter susceptibility per visit (ppb, whole-brain referenced)",
        caption="change: since the previous comparable visit; simulated: nominal change put "
        "into the phantom (the measured change is smaller: atlas partial volume). "
        + ILLUSTRATIVE_Z,
    )
    table.add_column("visit / structure", no_wrap=True)
    for column in ("ppb", "z", "change", "reliable", "simulated"):
        table.add_column(column, justify="right", no_wrap=True)
    # Grouped per subject (stable: visits stay in date order), not in processing order.
    for visit, record in sorted(outcome.visits, key=lambda pair: pair[0].subject):
        table.add_row(f"[bold]{visit.label}[/bold]")
        if record.error:
            table.add_row(f"  failed: {record.error}", end_section=True)
            continue
        for index, name in enumerate(STRUCTURES):
            values = record.structures.values(name, BILATERAL) or Values()
            table.add_row(
                "  " + name.replace("_", " "),
                _number(values.mean_ppb),
                _number(values.z, 2, signed=True),
                _number(values.change_ppb, signed=True),
                _reliable(values.reliable_change),
                _number(visit.simulated_change_ppb.get(name), signed=True),
                end_section=index == len(STRUCTURES) - 1,
            )
    return table


def print_outcome(outcome: DemoOutcome, console: Console) -> None:
    console.print(visit_table(outcome))
    latest: dict[str, ProcessingRecord] = {}
    for visit, record in outcome.visits:
        latest[visit.subject] = record
    for subject, record in latest.items():
        risk = record.risk or Risk("not assessed")
        console.print(f"\n[bold]{subject}[/bold]: progression risk [bold]{risk.level}[/bold]")
        for reason in risk.reasons:
            console.print(f"  - {reason}")
    console.print("\nOutputs (latest visit of each subject):")
    for subject, record in latest.items():
        for name, path in sorted(record.outputs.items()):
            console.print(f"  {subject} {name}: {path}", soft_wrap=True, highlight=False)
    console.print(f"Delivered copies (folder destination): {outcome.data_dir / 'delivered'}")
    console.print(f"Deliveries by state: {dict(outcome.deliveries)}")
    size_mb = sum(p.stat().st_size for p in outcome.data_dir.rglob("*") if p.is_file()) / 1e6
    kind = "kept as asked" if outcome.kept else "a temporary folder: delete it when done"
    console.print(
        f"Demo data directory: {outcome.data_dir} ({size_mb:.0f} MB; {kind})",
        soft_wrap=True,
        highlight=False,
    )
    console.print(f"Finished in {outcome.seconds / 60:.1f} min.")
    console.print(
        "Decision support for monitoring on simulated data; not a diagnosis. "
        "Research use until validated locally."
    )
