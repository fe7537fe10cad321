"""`qsm-monitor process`: the service's pipeline run synchronously on files and folders."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dicom_node.assemble.seg_input import find_segmentation, is_segmentation
from dicom_node.assemble.study import AssembledAcquisition, Rejection, assemble_study
from dicom_node.process.pipeline import ProcessingResult, Progress, process_acquisition
from monitor.settings import Settings


def collect_files(paths: Sequence[Path]) -> list[Path]:
    """Files as given plus every file below given folders (hidden files skipped)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = (p for p in path.rglob("*") if p.is_file())
            files.extend(sorted(p for p in found if not p.name.startswith(".")))
        else:
            files.append(path)
    return files


def process_paths(
    paths: Sequence[Path], settings: Settings, progress: Progress | None = None
) -> list[dict[str, Any]]:
    """One record per acquisition found; a failed one carries `error` instead of outputs."""
    files = collect_files(paths)
    report = assemble_study(files)
    seg_files = [path for path in files if is_segmentation(path)]  # read once, not per study
    records = []
    for assembled in report.acquisitions:
        try:
            result = process_acquisition(
                assembled, _with_segmentation(assembled, seg_files, settings), progress
            )
        except Exception as exc:  # one bad study must not stop the others
            result = ProcessingResult.failure(assembled, exc)
        records.append(result.to_record().to_json())
    if not report.acquisitions:
        reasons = "; ".join(_named_reasons(report.rejected)) or "no DICOM images"
        records.append(_nothing_found(f"no QSM acquisition found: {reasons}"))
    return records


SHOWN_FILES = 3
"""Files named per kind of fault when nothing was found; the rest are counted."""


def _named_reasons(rejected: Sequence[Rejection]) -> list[str]:
    """Why nothing was found, for the user who gave these files: unreadable files by their
    path (as given, so they can be found), grouped by fault; the other reasons as recorded."""
    by_fault: dict[str, list[str]] = {}
    for rejection in rejected:
        if rejection.unreadable is not None:
            file = rejection.unreadable
            by_fault.setdefault(file.fault, []).append(str(file.path))
    named = []
    for fault, paths in by_fault.items():
        shown = ", ".join(paths[:SHOWN_FILES])
        more = f" and {len(paths) - SHOWN_FILES} more" if len(paths) > SHOWN_FILES else ""
        named.append(f"{len(paths)} file(s) {fault}: {shown}{more}")
    return named + [r.reason for r in rejected if r.unreadable is None]


def found_no_acquisition(records: Sequence[dict[str, Any]]) -> bool:
    """True when `process_paths` found no QSM acquisition in its files at all: wrong input,
    not a failed study (its one record names no study and says why)."""
    return len(records) == 1 and records[0]["study_uid"] is None and bool(records[0]["error"])


def _with_segmentation(
    assembled: AssembledAcquisition, seg_files: Sequence[Path], settings: Settings
) -> Settings:
    """A DICOM SEG among the files, on this acquisition's frame, replaces the atlas (unless
    `--segmentation` named one or the site switched received segmentations off)."""
    config = settings.segmentation
    if config.method == "external" or not config.use_received_segmentation:
        return settings
    found = find_segmentation(seg_files, assembled.frame_of_reference_uid)
    return settings if found is None else settings.with_external_segmentation(found)


def _nothing_found(reason: str) -> dict[str, Any]:
    return {
        "patient_id": None,
        "study_uid": None,
        "study_date": None,
        "structures": {},
        "risk": None,
        "outputs": {},
        "error": reason,
    }
