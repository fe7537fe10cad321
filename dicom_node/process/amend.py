"""Amended reports: a visit whose assessment changed after its results were sent.

An earlier exam that arrives late (back-fill), or an identity review that brings a visit into
or out of a patient's history, changes the previous visit, the change values and possibly
the risk of visits that were already reported. Their reports in the PACS and the EHR would
then contradict `qsm-monitor patient`. So the node issues an amendment for each of them: a
job keyed by the acquisition and a digest of its new assessment (a retry or a second trigger
with the same content adds nothing), which re-emits what depends on the assessment (SR with a
Predecessor Documents reference, trend plot, FHIR conditional updates, an alert when the risk
has newly become elevated) into a folder of its own and queues it for every destination.
The reconstruction and the measurements are not repeated: only the assessment changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from sqlalchemy import or_, select
from sqlalchemy.orm import sessionmaker

from dicom_node.assemble.seg_input import split_segmentation
from dicom_node.assemble.study import AssembledAcquisition, assemble_study
from dicom_node.outputs.common import read_sources
from dicom_node.outputs.emit import emit_amendment
from dicom_node.process.pipeline import ProcessingResult, Progress, output_dir
from dicom_node.queue.results import Result
from monitor.record import ProcessingRecord, Structures
from monitor.settings import Settings
from monitor.tracking.history import TrackedVisit, acquisition_keys, stored_tracking
from monitor.tracking.schema import open_history
from monitor.tracking.tables import Acquisition
from monitor.types import InvalidAcquisitionError

AMEND_PREFIX = "amend:"
"""Job and result keys of amendments: ``amend:<acquisition key>:<assessment digest>``."""

_DIGEST_FIELDS = (
    "risk",
    "previous_study_uid",
    "baseline_study_uid",
    "comparable",
    "not_comparable_reason",
    "identity_status",
    "age_years",
)
_MAP_OUTPUTS = ("qsm_parametric_map", "qsm_mr_series")
"""Where the numbers were measured, in the order the SR prefers to reference them."""


def assessment_digest(record: ProcessingRecord) -> str:
    """A short hash of what a report says about history: values, scores, changes, risk.

    Taken from the typed record's JSON, so a stored row of any version and the assessment
    now in the history are compared in one layout."""
    data = record.to_json()
    content = {"structures": data["structures"], **{name: data[name] for name in _DIGEST_FIELDS}}
    text = json.dumps(content, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def latest_result(sessions: sessionmaker, acquisition_key: str) -> Result | None:
    """The acquisition's newest result: its first report or its latest amendment."""
    with sessions() as session:
        return session.scalar(
            select(Result)
            .where(
                or_(
                    Result.idempotency_key == acquisition_key,
                    Result.idempotency_key.startswith(f"{AMEND_PREFIX}{acquisition_key}:"),
                )
            )
            .order_by(Result.id.desc())
            .limit(1)
        )


def due_amendments(
    sessions: sessionmaker, settings: Settings, study_uids: Iterable[str]
) -> list[tuple[str, str, dict[str, Any]]]:
    """(job key, study UID, payload) for each reported acquisition of these studies whose
    stored assessment no longer matches its latest report."""
    study_uids = list(study_uids)
    if not study_uids:
        return []
    due = []
    with open_history(settings) as history:
        for key in acquisition_keys(history, study_uids):
            latest = latest_result(sessions, key)
            current = stored_tracking(history, key)
            reported = None if latest is None else latest.processing_record()
            if reported is None or reported.error or current is None:
                continue  # never reported here, or nothing to report
            digest = assessment_digest(reassessed(reported, current))
            if digest != assessment_digest(reported):
                due.append((f"{AMEND_PREFIX}{key}:{digest}", latest.study_uid, {"amend": key}))
    return due


def amend_acquisition(
    acquisition_key: str,
    settings: Settings,
    sessions: sessionmaker,
    progress: Progress | None = None,
) -> ProcessingResult:
    """Re-emit the assessment-dependent outputs of one reported acquisition.

    Raises InvalidAcquisitionError (permanent) when the acquisition is gone from the history
    or its images are no longer retained (the SR needs them for identity and references).
    """
    latest = latest_result(sessions, acquisition_key)
    if latest is None:
        raise InvalidAcquisitionError("the acquisition was never reported by this node")
    with open_history(settings) as history:
        current = stored_tracking(history, acquisition_key)
        inputs = _input_paths(history, acquisition_key)
    if current is None:
        raise InvalidAcquisitionError("the acquisition is no longer in the patient history")
    assembled = _reassemble(acquisition_key, inputs)
    if progress is not None:
        progress("amended outputs")
    previous = latest.processing_record()
    amendment = previous.amendment + 1
    superseded = None if previous.risk is None else previous.risk.level
    result = _amended_result(previous, current, amendment, superseded)
    record = result.to_record()
    outputs = {name: Path(path) for name, path in previous.outputs.items()}
    base = output_dir(settings, acquisition_key)
    emitted = emit_amendment(
        record,
        assembled.source.issuer_of_patient_id,
        read_sources(assembled.reference_paths),
        _measured_maps(outputs),
        _read_header(outputs.get("sr")),
        base.with_name(f"{base.name}-amendment-{amendment}"),
        settings,
    )
    return replace(
        result,
        outputs={**outputs, **emitted.outputs},
        qc={**result.qc, "emit": {"skipped": emitted.skipped}},
    )


def reassessed(reported: ProcessingRecord, current: TrackedVisit) -> ProcessingRecord:
    """The reported record with the assessment now stored in the history."""
    tracked = reported.with_tracking(current.fields)
    return replace(tracked, structures=Structures.from_json(current.structures))


def _amended_result(
    previous: ProcessingRecord, current: TrackedVisit, amendment: int, superseded: str | None
) -> ProcessingResult:
    return ProcessingResult(
        idempotency_key=previous.idempotency_key,
        patient_id=previous.patient_id or "",
        study_uid=previous.study_uid,
        study_date=previous.study_date,
        series_uids=previous.series_uids,
        outputs={},
        structures=current.structures,
        risk=current.fields["risk"],
        history=current.fields,
        qc=dict(previous.qc.data),
        amendment=amendment,
        superseded_risk_level=superseded,
    )


def _input_paths(history: sessionmaker, acquisition_key: str) -> list[Path]:
    with history() as session:
        paths = session.scalar(
            select(Acquisition.input_paths).where(Acquisition.idempotency_key == acquisition_key)
        )
    return [Path(p) for p in paths or []]


def _reassemble(acquisition_key: str, paths: list[Path]) -> AssembledAcquisition:
    """The acquisition's images again, for the SR's identity and source references."""
    images, _ = split_segmentation(paths)
    if not images or not all(path.exists() for path in images):
        raise InvalidAcquisitionError("the input DICOM files are no longer retained")
    for assembled in assemble_study(images).acquisitions:
        if assembled.idempotency_key == acquisition_key:
            return assembled
    raise InvalidAcquisitionError("the retained files no longer form this acquisition")


def _measured_maps(outputs: Mapping[str, Path]) -> list[Dataset]:
    """Headers of the map series the first report referenced (it holds the numbers)."""
    for name in _MAP_OUTPUTS:
        folder = outputs.get(name)
        if folder is not None and folder.is_dir():
            return [dcmread(p, stop_before_pixels=True) for p in sorted(folder.glob("*.dcm"))]
    return []


def _read_header(path: Path | None) -> Dataset | None:
    return None if path is None or not path.exists() else dcmread(path, stop_before_pixels=True)
