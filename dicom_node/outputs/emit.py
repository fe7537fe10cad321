"""The emit step: every clinical output of one processed acquisition, written into its output
folder under fixed names, ready for the outbox.

Re-running for the same acquisition rewrites the same names with the same identities: DICOM
objects take their UIDs from the acquisition's idempotency key (`dicom_node.outputs.common`;
only creation times differ), the FHIR resources their identifiers from it (the Bundle and the
alert are byte-identical), the alert its ``alert_id``. That is what makes a retry, a re-run
after a crash or `qsm-monitor resend` harmless for every receiver.
Each file is written atomically (temp name, fsync, rename), so a folder destination or a
crash never sees half a file.

An output that cannot exist for this record (no measurements: no SR and no FHIR
Observations; risk not elevated: no alert) is left out and its reason kept, so the record
says why a destination received less.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydicom.dataset import Dataset

from dicom_node.files import write_durably
from dicom_node.logs import uid_hash
from dicom_node.outputs.common import producing_version
from monitor.record import ProcessingRecord
from monitor.settings import Settings
from monitor.types import QSMResult

if TYPE_CHECKING:
    from dicom_node.outputs.key_images import KeyImageKind

FILE_NAMES: dict[str, str] = {
    "qsm_parametric_map": "qsm_parametric_map",
    "qsm_mr_series": "qsm_mr_series",
    "sr": "sr.dcm",
    "key_image_segmentation_png": "key_image_segmentation.png",
    "key_image_segmentation": "key_image_segmentation.dcm",
    "trend_plot_png": "trend_plot.png",
    "trend_plot": "trend_plot.dcm",
    "report_page_png": "report_page.png",
    "report_page_pdf": "report_page.pdf",
    "report_page": "report_page.dcm",
    "report_pdf": "report_pdf.dcm",
    "fhir_bundle": "fhir-bundle.json",
    "alert": "alert.json",
}
"""Record output name -> name in the acquisition's output folder (stable across versions:
folder destinations and integration engines match on them). The QSM map series are folders
of ``NNNN.dcm`` (instance number), everything else one file."""

ALERT_EVENT = "qsm-monitor.risk.elevated"
KEY_IMAGE_TITLE = "qsm-monitor: deep grey matter segmentation"


@dataclass(frozen=True)
class EmitInput:
    """What the outputs are made of: the record (numbers, identity, risk) and the images."""

    record: ProcessingRecord
    """The typed record of this acquisition (`ProcessingResult.to_record()`), before emitting."""
    reference_paths: Sequence[Path]
    """First-echo magnitude files in slice order: identity and geometry of derived objects."""
    qsm: QSMResult
    magnitude: np.ndarray
    """First-echo magnitude volume on the QSM grid (the key image's background)."""
    labels: np.ndarray | None
    """Deep grey matter labels on the QSM grid; None when segmentation produced none."""
    issuer: str = ""
    """Issuer of Patient ID: with the record's patient ID, finds the patient's history."""


@dataclass(frozen=True)
class Emitted:
    outputs: dict[str, Path] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    """Output name -> plain reason it was not made (goes to ``qc["emit"]``)."""


def emit_outputs(inputs: EmitInput, out_dir: Path, settings: Settings) -> Emitted:
    """Write every output that applies to this record into `out_dir`.

    Builders signal "not for this record" with ValueError; anything else is a fault and
    propagates, so the job is retried and, if it persists, fails visibly.
    """
    from dicom_node.outputs.common import read_sources

    emitted = Emitted()
    sources = read_sources(inputs.reference_paths)
    maps = _qsm_maps(inputs, sources, out_dir, settings, emitted)
    steps: list[tuple[str, Callable[[], Path]]] = [
        ("key_image_segmentation_png", lambda: _key_image_png(inputs, out_dir)),
        (
            "key_image_segmentation",
            lambda: _sc(inputs.record, sources, "key_image_segmentation", out_dir, settings),
        ),
        *_report_steps(inputs.record, inputs.issuer, sources, maps, out_dir, settings),
        ("alert", lambda: _alert(inputs.record, out_dir)),
    ]
    return _run_steps(steps, out_dir, emitted)


def emit_amendment(  # noqa: PLR0913 - the amended record and what it refers to
    record: ProcessingRecord,
    issuer: str,
    sources: Sequence[Dataset],
    maps: Sequence[Dataset],
    predecessor: Dataset | None,
    out_dir: Path,
    settings: Settings,
) -> Emitted:
    """The outputs that depend on the assessment, for a record re-assessed after it was sent
    (``amendment`` >= 1), into a folder of their own: SR (replacing `predecessor`), trend
    plot, FHIR bundle (conditional updates) and, only when the risk has newly become
    elevated, the alert. Maps and segmentation images do not change and are not repeated."""
    steps = _report_steps(record, issuer, sources, maps, out_dir, settings, predecessor)
    if record.superseded_risk_level != "elevated":
        steps.append(("alert", lambda: _alert(record, out_dir)))
    return _run_steps(steps, out_dir, Emitted())


def _report_steps(  # noqa: PLR0913 - the pipeline's data, passed explicitly
    record: ProcessingRecord,
    issuer: str,
    sources: Sequence[Dataset],
    maps: Sequence[Dataset],
    out_dir: Path,
    settings: Settings,
    predecessor: Dataset | None = None,
) -> list[tuple[str, Callable[[], Path]]]:
    """Steps for what carries the assessment (z, change, risk), in dependency order."""
    return [
        ("trend_plot_png", lambda: _trend_plot_png(record, issuer, out_dir, settings)),
        ("trend_plot", lambda: _sc(record, sources, "trend_plot", out_dir, settings)),
        ("report_page_png", lambda: _report_page(record, out_dir)),
        ("report_page_pdf", lambda: _existing(out_dir / FILE_NAMES["report_page_pdf"])),
        ("report_page", lambda: _sc(record, sources, "report_page", out_dir, settings)),
        ("report_pdf", lambda: _report_pdf(record, sources, out_dir, settings)),
        ("sr", lambda: _sr(record, sources, maps, predecessor, out_dir, settings)),
        ("fhir_bundle", lambda: _fhir_bundle(record, out_dir, settings)),
    ]


def _run_steps(
    steps: Sequence[tuple[str, Callable[[], Path]]], out_dir: Path, emitted: Emitted
) -> Emitted:
    for name, step in steps:
        try:
            emitted.outputs[name] = step()
        except ValueError as exc:
            emitted.skipped[name] = " ".join(str(exc).split())
            _remove_stale(out_dir / FILE_NAMES[name])
    return emitted


def _remove_stale(path: Path) -> None:
    """A re-run that no longer makes an output (risk fell, QC now fails) must not leave the
    old one where a folder consumer or a later resend would take it for current."""
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def write_dataset(ds: Dataset, path: Path) -> Path:
    """A DICOM Part 10 file, atomically."""
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    write_durably(path, buffer.getvalue())
    return path


def write_json(content: Mapping[str, Any], path: Path) -> Path:
    """Sorted keys and fixed separators: the same content always gives the same bytes."""
    text = json.dumps(content, indent=2, sort_keys=True, allow_nan=False) + "\n"
    write_durably(path, text.encode("utf-8"))
    return path


def _qsm_maps(
    inputs: EmitInput,
    sources: Sequence[Dataset],
    out_dir: Path,
    settings: Settings,
    emitted: Emitted,
) -> list[Dataset]:
    """Write the configured map series; returns the objects the SR should reference (the
    Parametric Map when made: it holds the exact values the numbers were measured on)."""
    from dicom_node.outputs.qsm_map import OUTPUT_NAMES, build_qsm_maps

    try:
        series = build_qsm_maps(inputs.record, sources, inputs.qsm, settings=settings)
    except ValueError as exc:
        series = {}
        for kind in settings.outputs.qsm_maps:
            emitted.skipped[OUTPUT_NAMES[kind]] = " ".join(str(exc).split())
    for name, datasets in series.items():
        folder = out_dir / FILE_NAMES[name]
        for ds in datasets:
            write_dataset(ds, folder / f"{int(ds.InstanceNumber):04d}.dcm")
        emitted.outputs[name] = folder
    for name in set(OUTPUT_NAMES.values()) - set(series):
        _remove_stale(out_dir / FILE_NAMES[name])
    return series.get("qsm_parametric_map") or series.get("qsm_mr_series") or []


def _key_image_png(inputs: EmitInput, out_dir: Path) -> Path:
    from monitor.segment.keyimage import write_key_image  # matplotlib: load on demand

    path = out_dir / FILE_NAMES["key_image_segmentation_png"]
    if inputs.labels is None or not inputs.labels.any():
        raise ValueError("no segmentation labels to show")
    tmp = path.with_name(f".tmp-{path.name}")
    qc = inputs.record.qc
    write_key_image(
        tmp, inputs.magnitude, inputs.qsm.chi_ppm, inputs.labels, inputs.qsm.voxel_mm,
        KEY_IMAGE_TITLE, affine_ras=inputs.qsm.affine_ras,
        qc_failure=qc.segmentation_reason if qc.segmentation_reportable is False else None,
    )  # fmt: skip
    write_durably(path, tmp.read_bytes())
    tmp.unlink()
    return path


def _trend_plot_png(
    record: ProcessingRecord, issuer: str, out_dir: Path, settings: Settings
) -> Path:
    """Drawn after the tracking step stored this visit, so the plot includes it."""
    from monitor.tracking.timeline import write_patient_trend_plot

    path = out_dir / FILE_NAMES["trend_plot_png"]
    patient_id = record.patient_id
    if not patient_id or write_patient_trend_plot(path, settings, patient_id, issuer) is None:
        raise ValueError("the patient's history has no values to plot")
    return path


def _sc(
    record: ProcessingRecord,
    sources: Sequence[Dataset],
    kind: KeyImageKind,
    out_dir: Path,
    settings: Settings,
) -> Path:
    """The Secondary Capture of the `kind` PNG drawn just before, for PACS viewers."""
    from dicom_node.outputs.key_images import build_key_image

    png = out_dir / FILE_NAMES[f"{kind}_png"]
    if not png.exists():
        raise ValueError(f"no {kind} PNG was drawn")
    sc = build_key_image(record, sources, png, kind, settings=settings)
    return write_dataset(sc, out_dir / FILE_NAMES[kind])


def _report_page(record: ProcessingRecord, out_dir: Path) -> Path:
    """The one-page report (PNG and PDF), with the trend plot drawn just before."""
    from dicom_node.outputs.report_page import write_report_page  # matplotlib: on demand

    if record.error or (not record.structures and record.risk is None):
        raise ValueError("no values and no risk to report")
    png = out_dir / FILE_NAMES["report_page_png"]
    trend = out_dir / FILE_NAMES["trend_plot_png"]
    write_report_page(
        record, trend if trend.exists() else None, png, out_dir / FILE_NAMES["report_page_pdf"]
    )
    return png


def _existing(path: Path) -> Path:
    if not path.exists():
        raise ValueError(f"{path.name} was not drawn")
    return path


def _report_pdf(
    record: ProcessingRecord, sources: Sequence[Dataset], out_dir: Path, settings: Settings
) -> Path:
    from dicom_node.outputs.report_page import build_report_pdf

    pdf = _existing(out_dir / FILE_NAMES["report_page_pdf"]).read_bytes()
    report = build_report_pdf(record, sources, pdf, settings=settings)
    return write_dataset(report, out_dir / FILE_NAMES["report_pdf"])


def _sr(  # noqa: PLR0913 - the pipeline's data, passed explicitly
    record: ProcessingRecord,
    sources: Sequence[Dataset],
    maps: Sequence[Dataset],
    predecessor: Dataset | None,
    out_dir: Path,
    settings: Settings,
) -> Path:
    from dicom_node.outputs.sr import build_measurement_report

    report = build_measurement_report(
        record, sources, maps, settings=settings, predecessor=predecessor
    )
    return write_dataset(report, out_dir / FILE_NAMES["sr"])


def _fhir_bundle(record: ProcessingRecord, out_dir: Path, settings: Settings) -> Path:
    from monitor.fhir.bundle import PatientRef, build_bundle  # fhir.resources: on demand

    bundle = build_bundle(record, PatientRef.from_record(record, settings.fhir), settings.fhir)
    return write_json(bundle, out_dir / FILE_NAMES["fhir_bundle"])


def alert_payload(record: ProcessingRecord) -> dict[str, Any] | None:
    """The webhook alert, or None unless risk is ``elevated``.

    Deliberately free of patient identity: webhooks feed pagers and chat rooms that are not
    access-controlled like the PACS or EHR, so the alert carries no name, patient ID, dates,
    accession number or UID. ``study_ref`` is the same one-way hash of the Study Instance UID
    the node's logs use; the clinical details travel on the DICOM and FHIR channels (the SR's
    risk group, the FHIR Flag), where readers find the study.
    """
    risk = record.risk
    if risk is None or risk.level != "elevated":
        return None
    key = record.idempotency_key
    version = producing_version(record)
    return {
        "alert_id": hashlib.sha256(f"alert:{key}:{version}".encode()).hexdigest()[:32],
        "event": ALERT_EVENT,
        "level": "elevated",
        "reasons": list(risk.reasons),
        "study_ref": uid_hash(record.study_uid),
        "acquisition_ref": uid_hash(key),
        "pipeline_version": version,
        "message": "Brain iron progression risk is elevated; the QSM report for this study "
        "(DICOM SR, FHIR DiagnosticReport) has the details. Decision support, not a diagnosis.",
    }


def _alert(record: ProcessingRecord, out_dir: Path) -> Path:
    payload = alert_payload(record)
    if payload is None:
        raise ValueError("risk is not elevated")
    return write_json(payload, out_dir / FILE_NAMES["alert"])
