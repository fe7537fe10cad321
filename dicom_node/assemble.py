"""Find multi-echo gradient-echo acquisitions in the files of one study; never raises.

Vendor layouts handled: separate magnitude and phase series (Siemens), magnitude/phase or
real/imaginary in one series (GE, Philips), and Enhanced MR multi-frame objects. Separate series
are paired by frame of reference, then by how alike they look (echo times, matrix, description)
and by how close their series numbers are; the volume builder then checks that the pair really
shares its geometry, so a mismatch is reported as such rather than as "no phase".
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dicom_node.assemble_scan import FrameRecord, ImageKind, StudySource, scan_headers
from dicom_node.assemble_volume import _TE_DECIMALS, build_acquisition
from dicom_node.geometry import slice_normal
from monitor.types import Acquisition, InvalidAcquisitionError


@dataclass(frozen=True)
class Rejection:
    """Series that could not become an `Acquisition`, with one plain reason (no patient data)."""

    series_uids: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class AssembledAcquisition:
    """An `Acquisition` plus where it came from, for tracking and idempotent job submission."""

    acquisition: Acquisition
    series_uids: tuple[str, ...]
    frame_of_reference_uid: str
    vendor: str
    idempotency_key: str
    """SHA-256 of the sorted SOP Instance UIDs: the same images always give the same key."""
    sop_instance_uids: tuple[str, ...] = field(repr=False)
    source: StudySource = field(repr=False)
    """Study UID, patient ID, birth date, sex and study date: for tracking, never for logs."""
    reference_paths: tuple[Path, ...] = field(default=(), repr=False)
    """Files of the first-echo magnitude (or real) images in slice order (z = 0, 1, ...): the
    source whose identity, frame of reference and geometry derived DICOM objects copy."""
    input_paths: tuple[Path, ...] = field(default=(), repr=False)
    """Every file of the acquisition: what re-processing reads again (monitor.tracking)."""
    model: str = ""
    """Manufacturer's model name, part of the protocol fingerprint."""

    @property
    def study_uid(self) -> str:
        return self.source.study_uid


@dataclass(frozen=True)
class AssemblyReport:
    acquisitions: list[AssembledAcquisition]
    rejected: list[Rejection]


_COMPLEX_PAIRS: tuple[tuple[ImageKind, ImageKind], ...] = (
    ("magnitude", "phase"),
    ("real", "imaginary"),
)


def assemble_study(paths: Iterable[Path | str]) -> AssemblyReport:
    """All multi-echo GRE acquisitions in `paths`, and one rejection per series that is not one."""
    scan = scan_headers(Path(p) for p in paths)
    rejected = [Rejection((), f"unreadable file: {name}") for name in scan.unreadable]
    rejected += [
        Rejection((uid,), f"not an MR image (SOP class {sop_class})")
        for uid, sop_class in scan.not_mr_series.items()
    ]
    candidates, series_rejections = _candidates(_by_series(scan.records))
    rejected += series_rejections
    acquisitions = []
    for records, kinds in candidates:
        series_uids = tuple(sorted({r.series_uid for r in records}))
        try:
            acquisitions.append(_assembled(records, kinds))
        except InvalidAcquisitionError as error:
            rejected.append(Rejection(series_uids, str(error)))
        except Exception as error:  # "never raises": one odd file must not stop a study
            rejected.append(Rejection(series_uids, f"unexpected content ({type(error).__name__})"))
    return AssemblyReport(acquisitions, rejected)


def _by_series(records: list[FrameRecord]) -> dict[str, list[FrameRecord]]:
    """Group frames by series, dropping resent copies of the same instance and frame."""
    seen: set[tuple[str, int | None]] = set()
    grouped: dict[str, list[FrameRecord]] = defaultdict(list)
    for record in records:
        key = (record.sop_uid, record.frame_index)
        if key not in seen:
            seen.add(key)
            grouped[record.series_uid].append(record)
    return grouped


def _candidates(
    series: dict[str, list[FrameRecord]],
) -> tuple[list[tuple[list[FrameRecord], tuple[ImageKind, ImageKind]]], list[Rejection]]:
    """Self-contained complex series, plus separate magnitude/phase series paired up."""
    candidates = []
    rejected = []
    magnitude_only: list[list[FrameRecord]] = []
    phase_only: list[list[FrameRecord]] = []
    for uid, all_records in series.items():
        records = [r for r in all_records if not r.derived]
        if not records:
            rejected.append(Rejection((uid,), "derived images, not an original acquisition"))
            continue
        if not all(r.gradient_echo for r in records):
            rejected.append(Rejection((uid,), "not a gradient-echo sequence"))
            continue
        kinds = {r.kind for r in records}
        pair = next((p for p in _COMPLEX_PAIRS if set(p) <= kinds), None)
        if pair is not None:
            candidates.append((records, pair))
        elif kinds == {"magnitude"}:
            magnitude_only.append(records)
        elif kinds == {"phase"}:
            phase_only.append(records)
        else:
            rejected.append(Rejection((uid,), f"incomplete complex data: only {sorted(kinds)}"))
    for magnitude in sorted(magnitude_only, key=lambda rs: rs[0].series_number):
        phase = _best_phase_partner(magnitude, phase_only)
        if phase is None:
            rejected.append(Rejection((magnitude[0].series_uid,), "no phase images"))
            continue
        phase_only.remove(phase)
        candidates.append((magnitude + phase, ("magnitude", "phase")))
    rejected += [Rejection((p[0].series_uid,), "no magnitude images") for p in phase_only]
    return candidates, rejected


def _best_phase_partner(
    magnitude: list[FrameRecord], phases: list[list[FrameRecord]]
) -> list[FrameRecord] | None:
    """Same frame of reference required; then the most alike, then the nearest series number."""
    first = magnitude[0]
    echoes = {r.te_ms for r in magnitude}

    def mismatch(phase: list[FrameRecord]) -> tuple[int, int, int, int]:
        other = phase[0]
        return (
            int({r.te_ms for r in phase} != echoes),
            int((other.rows, other.columns) != (first.rows, first.columns)),
            int(other.series_description != first.series_description),
            abs(other.series_number - first.series_number - 1),
        )

    same_frame = [p for p in phases if p[0].frame_of_reference_uid == first.frame_of_reference_uid]
    return min(same_frame, key=mismatch, default=None)


def _assembled(
    records: list[FrameRecord], kinds: tuple[ImageKind, ImageKind]
) -> AssembledAcquisition:
    used = [r for r in records if r.kind in kinds]
    series_numbers = sorted({r.series_number for r in used})
    first = used[0]
    label = f"{first.manufacturer or 'unknown vendor'} series {'+'.join(map(str, series_numbers))}"
    sop_uids = tuple(sorted({r.sop_uid for r in used}))
    return AssembledAcquisition(
        acquisition=build_acquisition(used, kinds, label),
        series_uids=tuple(sorted({r.series_uid for r in used})),
        frame_of_reference_uid=first.frame_of_reference_uid,
        vendor=first.manufacturer,
        idempotency_key=hashlib.sha256("\n".join(sop_uids).encode()).hexdigest(),
        sop_instance_uids=sop_uids,
        source=first.source,
        reference_paths=_reference_paths(used, kinds[0]),
        input_paths=tuple(sorted({r.path for r in used})),
        model=first.manufacturer_model,
    )


def _reference_paths(records: list[FrameRecord], kind: ImageKind) -> tuple[Path, ...]:
    """First-echo files of `kind` sorted along the slice normal, as the volume builder orders z;
    an Enhanced MR object holds every slice in one file, so each path appears once."""
    echoes = {id(r): round(r.te_ms, _TE_DECIMALS) for r in records if r.kind == kind and r.te_ms}
    first_te = min(echoes.values())
    stack = [r for r in records if echoes.get(id(r)) == first_te]
    normal = slice_normal(stack[0].orientation)
    stack.sort(key=lambda r: float(np.dot(r.position_lps, normal)))
    return tuple(dict.fromkeys(r.path for r in stack))
