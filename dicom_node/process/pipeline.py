"""The one processing path shared by `qsm-monitor serve` (workers) and `qsm-monitor process`.

An assembled acquisition goes through reconstruction, segmentation, measurement, tracking and
the emit step (DICOM and FHIR outputs); its maps, outputs and QC record are written to the data
directory and a plain record comes back. Keeping one function means the service and the
command line cannot drift apart, and one test covers both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dicom_node.logs import uid_hash
from dicom_node.process.analysis import AnalysisInput, Progress, measure_deep_grey, plain_json
from dicom_node.process.compute import ComputeEngine, LocalEngine
from dicom_node.process.node_work import InlineNodeWork, NodeWork
from monitor import __version__
from monitor.nifti.writer import write_result
from monitor.record import ProcessingRecord, Provenance, Qc, Structures, tracking_values
from monitor.settings import Settings
from monitor.types import Acquisition, InvalidAcquisitionError, QSMResult

if TYPE_CHECKING:
    from dicom_node.assemble.study import AssembledAcquisition
    from monitor.tracking.history import TrackedVisit


@dataclass(frozen=True)
class ProcessingResult:
    """What one processed acquisition produced (paths as written, tracking blocks as JSON);
    `to_record` gives the typed record that is emitted, stored and printed."""

    idempotency_key: str
    patient_id: str
    study_uid: str
    study_date: str | None
    series_uids: tuple[str, ...]
    outputs: Mapping[str, Path]
    structures: Mapping[str, Any] = field(default_factory=dict)
    """Deep grey matter statistics in ppb (`monitor.measure.report_block`) with norms scores
    and changes from tracking; empty when the segmentation QC withheld them (the reason is in
    ``qc["segmentation"]``)."""
    risk: Mapping[str, Any] | None = None
    """Longitudinal assessment {"level", "reasons"}; None only when processing failed."""
    history: Mapping[str, Any] = field(default_factory=dict)
    """The tracking step's other record fields (`monitor.tracking.history.HISTORY_FIELDS`)."""
    reassessed_study_uids: tuple[str, ...] = ()
    """Other visits of the patient whose assessment this one changed (a back-filled exam)."""
    qc: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    """One plain reason when processing failed (then `outputs` is empty)."""
    amendment: int = 0
    """How many times the assessment was re-issued after the first report
    (`dicom_node.process.amend`)."""
    superseded_risk_level: str | None = None
    """The risk level of the report an amendment replaces."""

    @classmethod
    def failure(cls, assembled: AssembledAcquisition, exc: BaseException) -> ProcessingResult:
        return cls(
            idempotency_key=assembled.idempotency_key,
            patient_id=assembled.source.patient_id,
            study_uid=assembled.study_uid,
            study_date=assembled.source.study_date or None,
            series_uids=tuple(assembled.series_uids),
            outputs={},
            error=plain_reason(exc),
        )

    def to_record(self) -> ProcessingRecord:
        """The typed record the outputs read and the results table stores (as JSON)."""
        return ProcessingRecord(
            idempotency_key=self.idempotency_key,
            patient_id=self.patient_id,
            study_uid=self.study_uid,
            study_date=self.study_date,
            series_uids=tuple(self.series_uids),
            structures=Structures.from_json(self.structures),
            **tracking_values({**self.history, "risk": self.risk}),
            reassessed_study_uids=tuple(self.reassessed_study_uids),
            outputs={name: str(path) for name, path in self.outputs.items()},
            qc=Qc(dict(self.qc)),
            error=self.error,
            amendment=self.amendment,
            superseded_risk_level=self.superseded_risk_level,
        )


def plain_reason(exc: BaseException) -> str:
    """One line for users and `last_error`: our input errors as written, others with type."""
    text = " ".join(str(exc).split())
    if isinstance(exc, InvalidAcquisitionError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def output_dir(settings: Settings, idempotency_key: str) -> Path:
    """One folder per acquisition, named by a hash (no UIDs or patient data in paths)."""
    return settings.storage.data_dir / "outputs" / uid_hash(idempotency_key)


def process_acquisition(
    assembled: AssembledAcquisition,
    settings: Settings,
    progress: Progress | None = None,
    engine: ComputeEngine | None = None,
    node_work: NodeWork | None = None,
) -> ProcessingResult:
    """Reconstruct, segment, measure, write maps + QC record; return the record.

    The heavy stage runs on `engine` (in this process by default, or on a Ray cluster);
    tracking and files are made here, the outputs by `node_work` (this thread by default).
    Raises on invalid input. Re-running for the same acquisition overwrites the same files
    atomically, so a retry after a crash leaves exactly one set of outputs.
    """
    engine = engine or LocalEngine(settings)
    analysis = engine.analyse(analysis_input(assembled, settings), progress)
    qsm, structures, segmentation_qc = analysis.qsm, analysis.structures, analysis.segmentation_qc
    tracked = _track(assembled, qsm, structures, segmentation_qc, settings, progress)
    qc = {
        **plain_json(qsm.qc),
        "segmentation": segmentation_qc,
        "whole_brain_mean_ppb": structures.get("whole_brain_mean_ppb"),
        "ran_on": analysis.ran_on,
        "provenance": provenance(assembled.acquisition, settings, qsm.reference).to_json(),
    }
    record = {
        "software": "qsm-monitor",
        "version": __version__,
        "acquisition": uid_hash(assembled.idempotency_key),
        "structures": structures,
        "segmentation": segmentation_qc,
    }
    outputs = write_result(qsm, output_dir(settings, assembled.idempotency_key), record)
    result = ProcessingResult(
        idempotency_key=assembled.idempotency_key,
        patient_id=assembled.source.patient_id,
        study_uid=assembled.study_uid,
        study_date=assembled.source.study_date or None,
        series_uids=tuple(assembled.series_uids),
        outputs=outputs,
        structures=tracked.structures,
        risk=tracked.fields["risk"],
        history=tracked.fields,
        reassessed_study_uids=tracked.reassessed_study_uids,
        qc=qc,
    )
    return _emit(
        result,
        assembled,
        qsm,
        analysis.labels,
        settings,
        progress,
        node_work or InlineNodeWork(),
    )


def _emit(  # noqa: PLR0913 - the pipeline's data, passed explicitly
    result: ProcessingResult,
    assembled: AssembledAcquisition,
    qsm: QSMResult,
    labels: np.ndarray | None,
    settings: Settings,
    progress: Progress | None,
    node_work: NodeWork,
) -> ProcessingResult:
    """Last step: the clinical outputs (SR, maps, key images, FHIR, alert) from the finished
    record; the worker then queues them for the destinations."""
    from dicom_node.outputs.emit import EmitInput

    if progress is not None:
        progress("outputs")
    inputs = EmitInput(
        result.to_record(),
        assembled.reference_paths,
        qsm,
        assembled.acquisition.magnitude[..., 0],
        labels,
        assembled.source.issuer_of_patient_id,
    )
    emitted = node_work.emit(inputs, output_dir(settings, result.idempotency_key), settings)
    return replace(
        result,
        outputs={**result.outputs, **emitted.outputs},
        qc={**result.qc, "emit": {"skipped": emitted.skipped}},
    )


def _track(  # noqa: PLR0913 - the pipeline's data, passed explicitly
    assembled: AssembledAcquisition,
    qsm: QSMResult,
    structures: Mapping[str, Any],
    segmentation_qc: Mapping[str, Any],
    settings: Settings,
    progress: Progress | None,
) -> TrackedVisit:
    """Store the visit in the patient's history; norms scores, changes and risk come back."""
    from monitor.tracking.fingerprint import ProtocolFingerprint
    from monitor.tracking.history import VisitInput, record_visit
    from monitor.tracking.schema import open_history

    if progress is not None:
        progress("tracking")
    acq, source = assembled.acquisition, assembled.source
    fingerprint = ProtocolFingerprint(
        field_strength_t=acq.b0_tesla,
        echo_times_ms=tuple(round(te * 1000.0, 3) for te in acq.te_s),
        voxel_mm=acq.voxel_mm,
        reference_region=qsm.reference,
        pipeline_version=__version__,
        vendor=assembled.vendor,
        model=assembled.model,
        pipeline_params={
            "recon": plain_json(qsm.params),
            "segmentation": settings.segmentation.model_dump(mode="json"),
        },
    )
    visit = VisitInput(
        patient_id=source.patient_id,
        issuer=source.issuer_of_patient_id,
        birth_date=source.patient_birth_date,
        sex=source.patient_sex,
        study_uid=source.study_uid,
        study_date=source.study_date,
        study_time=source.study_time,
        idempotency_key=assembled.idempotency_key,
        series_uids=tuple(assembled.series_uids),
        fingerprint=fingerprint,
        structures=structures,
        qc_failure=None if segmentation_qc["reportable"] else segmentation_qc["reason"],
        input_paths=tuple(str(p) for p in _inputs(assembled, settings)),
    )
    with open_history(settings) as sessions:
        return record_visit(sessions, visit, settings)


def _inputs(assembled: AssembledAcquisition, settings: Settings) -> list[Path]:
    """The files the result depends on: the images and an external segmentation."""
    external = settings.segmentation.external_path
    used = settings.segmentation.method == "external" and external is not None
    return [*assembled.input_paths, *([external] if used else [])]


def segment_and_measure(
    assembled: AssembledAcquisition,
    qsm: QSMResult,
    settings: Settings,
    progress: Progress | None,
) -> tuple[dict[str, Any], dict[str, Any], np.ndarray | None]:
    """Segment and measure on the node (`measure_deep_grey` with the study's inputs)."""
    return measure_deep_grey(analysis_input(assembled, settings), qsm, progress)


def analysis_input(assembled: AssembledAcquisition, settings: Settings) -> AnalysisInput:
    """Everything the heavy stage needs, read here on the node: the arrays, and an external
    segmentation loaded from its file (a Ray worker has no access to the spool)."""
    from dicom_node.assemble.seg_input import SegInputError, load_external_segmentation

    config = settings.segmentation
    inputs = AnalysisInput(assembled.acquisition, settings.recon, config, t1=assembled.t1)
    if config.method != "external" or config.external_path is None:
        return inputs
    try:
        external = load_external_segmentation(
            config.external_path, assembled.frame_of_reference_uid, config
        )
    except SegInputError as exc:
        return replace(inputs, external_refusal=str(exc))
    return replace(inputs, external=external)


STEP_NAMES = {
    "romeo": "ROMEO-style region-growing phase unwrapping",
    "laplacian": "Laplacian phase unwrapping",
    "vsharp": "V-SHARP background removal",
    "pdf": "PDF background removal",
    "lbv": "LBV (Laplacian boundary value) background removal",
    "tv_admm": "TV-ADMM dipole inversion",
    "tkd": "TKD dipole inversion",
}
SEGMENTATION_STEPS = {
    "atlas": "atlas registration with susceptibility-contrast borders",
    "external": "external segmentation",
}


def provenance(acquisition: Acquisition, settings: Settings, reference: str) -> Provenance:
    """What produced the values: the acquisition's parameters and the reconstruction chain."""
    recon = settings.recon
    return Provenance(
        b0_tesla=float(acquisition.b0_tesla),
        echo_times_ms=tuple(round(1000.0 * t, 3) for t in acquisition.te_s),
        voxel_mm=tuple(float(v) for v in acquisition.voxel_mm),  # type: ignore[arg-type]
        steps=(
            STEP_NAMES[recon.unwrap],
            "weighted multi-echo field fit",
            STEP_NAMES[recon.background],
            STEP_NAMES[recon.inversion],
            SEGMENTATION_STEPS[settings.segmentation.method],
        ),
        software=f"qsm-monitor {__version__}",
        reference_region=reference,
    )
