"""Process: an assembled acquisition in, a processing result with its outputs out.

The one pipeline (reconstruction, segmentation, measurement, tracking, outputs) shared by
`serve` (worker processes claiming jobs), `process` (files, synchronously), `reprocess` (a
patient's stored inputs) and amendments (a visit re-issued after its assessment changed).
Workers store the result and queue its deliveries in one transaction. Owns no tables of its
own; writes `results`, `outbox` and the patient history.
"""

from dicom_node.process.amend import AMEND_PREFIX, amend_acquisition, due_amendments
from dicom_node.process.analysis import Analysis, AnalysisInput, analyse, measure_deep_grey
from dicom_node.process.backfill import BackfillSummary, ResumeRequiredError, backfill
from dicom_node.process.batch import collect_files, found_no_acquisition, process_paths
from dicom_node.process.compute import ComputeEngine, LocalEngine, RayEngine, compute_engine
from dicom_node.process.pipeline import (
    ProcessingResult,
    Progress,
    analysis_input,
    output_dir,
    plain_reason,
    process_acquisition,
    segment_and_measure,
)
from dicom_node.process.reprocess import UnknownPatientError, reprocess_patient
from dicom_node.process.worker import (
    ShutdownLatch,
    ShutdownRequested,
    StageCallback,
    Worker,
    lease_owner_name,
    settings_for_job,
    worker_process_main,
)

__all__ = [
    "AMEND_PREFIX",
    "Analysis",
    "AnalysisInput",
    "BackfillSummary",
    "ComputeEngine",
    "LocalEngine",
    "RayEngine",
    "ResumeRequiredError",
    "ProcessingResult",
    "Progress",
    "ShutdownLatch",
    "ShutdownRequested",
    "StageCallback",
    "UnknownPatientError",
    "Worker",
    "amend_acquisition",
    "analyse",
    "analysis_input",
    "backfill",
    "collect_files",
    "compute_engine",
    "due_amendments",
    "found_no_acquisition",
    "lease_owner_name",
    "measure_deep_grey",
    "output_dir",
    "plain_reason",
    "process_acquisition",
    "process_paths",
    "reprocess_patient",
    "segment_and_measure",
    "settings_for_job",
    "worker_process_main",
]
