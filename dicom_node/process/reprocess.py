"""`qsm-monitor reprocess PATIENT_ID`: re-run a patient's visits with the current pipeline.

A pipeline upgrade with a new major version makes new visits not comparable with old ones.
Re-processing reads each earlier acquisition again from the DICOM files it was first
processed from (recorded in the history) and runs the one pipeline on them; the tracking step
then updates that acquisition in place and re-assesses the history, so the trend continues.
Retention: the node keeps every received instance in its spool (nothing deletes them), and
`process` records the files it was given; a visit whose files were removed (site clean-up,
moved folders) cannot be re-processed and is reported as such, keeping its old values.
"""

from __future__ import annotations

from typing import Any

from dicom_node.assemble.seg_input import split_segmentation
from dicom_node.assemble.study import assemble_study
from dicom_node.errors import NodeError
from dicom_node.process.pipeline import ProcessingResult, Progress, process_acquisition
from monitor.settings import Settings
from monitor.tracking.schema import open_history
from monitor.tracking.timeline import StoredInputs, stored_inputs


class UnknownPatientError(NodeError, LookupError):
    """The history has no visit of this patient."""


def reprocess_patient(
    settings: Settings, patient_id: str, issuer: str = "", progress: Progress | None = None
) -> list[dict[str, Any]]:
    """One record per acquisition of the patient, oldest first; a skipped one has `error`."""
    with open_history(settings) as sessions:
        inputs = stored_inputs(sessions, patient_id, settings, issuer)
    if inputs is None:
        raise UnknownPatientError("no visits of this patient in the history")
    return [_reprocess(stored, settings, progress) for stored in inputs]


def _reprocess(
    stored: StoredInputs, settings: Settings, progress: Progress | None
) -> dict[str, Any]:
    if not stored.retained:
        return _skipped(stored, "input DICOM files are no longer retained; old values kept")
    images, segmentation = split_segmentation(stored.paths)
    report = assemble_study(images)
    match = [a for a in report.acquisitions if a.idempotency_key == stored.idempotency_key]
    if not match:
        return _skipped(stored, "the retained files no longer form this acquisition")
    if segmentation is not None:  # measured on it before: keep the same regions
        settings = settings.with_external_segmentation(segmentation)
    try:
        return process_acquisition(match[0], settings, progress).to_record().to_json()
    except Exception as exc:  # one bad visit must not stop the patient's others
        return ProcessingResult.failure(match[0], exc).to_record().to_json()


def _skipped(stored: StoredInputs, reason: str) -> dict[str, Any]:
    return {
        "study_uid": stored.study_uid,
        "idempotency_key": stored.idempotency_key,
        "outputs": {},
        "error": reason,
    }
