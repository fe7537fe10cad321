"""Find multi-echo gradient-echo acquisitions in the files of one study; never raises.

Vendor layouts handled: separate magnitude and phase series (Siemens), magnitude/phase or
real/imaginary in one series (GE, Philips), and Enhanced MR multi-frame objects. Separate series
are paired by frame of reference, then by how alike they look (echo times, matrix, description)
and by how close their series numbers are, best pair first over the whole study (so a
single-echo series such as a localiser can never take the phase of the real GRE); the volume
builder then checks that the pair really shares its geometry, so a mismatch is reported as such
rather than as "no phase". An inversion-prepared single-echo series (MPRAGE, IR-SPGR) is a
same-session T1 and rides with the acquisition on its frame of reference, for segmentation.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from dicom_node.assemble.scan import (
    FrameRecord,
    ImageKind,
    ScanResult,
    StudySource,
    UnreadableFile,
    scan_headers,
)
from dicom_node.assemble.volume import TE_DECIMALS, build_acquisition, build_t1_image
from dicom_node.geometry import slice_normal
from monitor.types import Acquisition, InvalidAcquisitionError, T1Image


@dataclass(frozen=True)
class Rejection:
    """Series that could not become an `Acquisition`, with one plain reason (no patient data)."""

    series_uids: tuple[str, ...]
    reason: str
    unreadable: UnreadableFile | None = None
    """The file, when the rejection is of a file that is not readable DICOM: a command run
    on the user's own folder names it (`qsm-monitor process`), records and logs do not."""


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
    t1: T1Image | None = field(default=None, repr=False)
    """A same-session 3-D T1 on the same frame of reference, when the study has one."""
    t1_series_uid: str = ""

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
    t1_series, candidates, series_rejections = _grouped(scan.records)
    rejected = _scan_rejections(scan) + series_rejections
    acquisitions = []
    for records, kinds in candidates:
        series_uids = tuple(sorted({r.series_uid for r in records}))
        try:
            acquisitions.append(_assembled(records, kinds))
        except InvalidAcquisitionError as error:
            rejected.append(Rejection(series_uids, str(error)))
        except Exception as error:  # "never raises": one odd file must not stop a study
            rejected.append(Rejection(series_uids, f"unexpected content ({type(error).__name__})"))
    acquisitions, t1_rejections = _with_t1(acquisitions, t1_series)
    return AssemblyReport(acquisitions, rejected + t1_rejections)


@dataclass(frozen=True)
class PlannedAcquisition:
    """An acquisition as headers describe it, before any pixel is read: enough to queue its
    job (key, files) and to order a patient's visits, at a fraction of assembling it."""

    idempotency_key: str
    source: StudySource = field(repr=False)
    frame_of_reference_uid: str
    input_paths: tuple[Path, ...] = field(repr=False)
    """Its images and every same-session T1 on its frame (assembly picks the T1 later)."""

    @property
    def study_uid(self) -> str:
        return self.source.study_uid


@dataclass(frozen=True)
class Discovery:
    acquisitions: list[PlannedAcquisition]
    segmentations: list[Path]
    """DICOM SEG files among the paths."""
    set_aside: list[str]
    """Why files or series were not used (unreadable, not MR, no GRE): no patient data."""


def discover_study(paths: Iterable[Path | str]) -> Discovery:
    """The acquisitions `assemble_study` would look at, from headers alone (for archives:
    `qsm-monitor backfill` reads every header once here and the pixels only in the job).

    A candidate whose volume cannot be built is still listed: its job fails with the reason.
    """
    scan = scan_headers(Path(p) for p in paths)
    t1_series, candidates, rejected = _grouped(scan.records)
    planned = []
    for records, kinds in candidates:
        used = [r for r in records if r.kind in kinds]
        first = used[0]
        t1_paths = {
            r.path for t1 in _same_frame_t1(t1_series, first.frame_of_reference_uid) for r in t1
        }
        planned.append(
            PlannedAcquisition(
                idempotency_key=_acquisition_key(used),
                source=first.source,
                frame_of_reference_uid=first.frame_of_reference_uid,
                input_paths=tuple(sorted({*(r.path for r in used), *t1_paths})),
            )
        )
    set_aside = [r.reason for r in _scan_rejections(scan) + rejected]
    return Discovery(planned, scan.segmentations, set_aside)


def _scan_rejections(scan: ScanResult) -> list[Rejection]:
    """Files that are no DICOM and series that are no MR image, as rejections."""
    rejected = [Rejection((), file.reason, file) for file in scan.unreadable]
    rejected += [
        Rejection((uid,), f"not an MR image (SOP class {sop_class})")
        for uid, sop_class in scan.not_mr_series.items()
    ]
    return rejected


def _grouped(
    records: list[FrameRecord],
) -> tuple[
    dict[str, list[FrameRecord]],
    list[tuple[list[FrameRecord], tuple[ImageKind, ImageKind]]],
    list[Rejection],
]:
    """Frames by series: the structural T1 series, the GRE candidates (with the image kinds
    each pairs) and the series that are neither; shared by assembly and header discovery."""
    series = _by_series(records)
    t1_series = {uid: frames for uid, frames in series.items() if _is_t1(frames)}
    candidates, rejected = _candidates(
        {uid: frames for uid, frames in series.items() if uid not in t1_series}
    )
    return t1_series, candidates, rejected


def _same_frame_t1(
    t1_series: dict[str, list[FrameRecord]], frame_of_reference_uid: str
) -> list[list[FrameRecord]]:
    """The T1 series on a frame of reference, in the order they are tried (series number)."""
    same_frame = [
        records
        for records in t1_series.values()
        if records[0].frame_of_reference_uid == frame_of_reference_uid
    ]
    return sorted(same_frame, key=lambda records: records[0].series_number)


def _is_t1(records: list[FrameRecord]) -> bool:
    """An original, single-echo, inversion-prepared magnitude series: a structural T1."""
    originals = [r for r in records if not r.derived]
    return (
        bool(originals)
        and all(r.inversion_recovery and r.kind == "magnitude" for r in originals)
        and len({round(r.te_ms or 0.0, TE_DECIMALS) for r in originals}) == 1
    )


def _with_t1(
    acquisitions: list[AssembledAcquisition], t1_series: dict[str, list[FrameRecord]]
) -> tuple[list[AssembledAcquisition], list[Rejection]]:
    """Attach to each acquisition the T1 on its frame of reference, the earliest series first
    (before any contrast injection, when a protocol has two).

    A T1 that cannot be read costs only itself: the acquisition goes on without it.
    """
    rejected = []
    used: set[str] = set()
    attached = []
    for acquisition in acquisitions:
        for records in _same_frame_t1(t1_series, acquisition.frame_of_reference_uid):
            first = records[0]
            label = f"{first.manufacturer or 'unknown vendor'} series {first.series_number} (T1)"
            try:
                t1 = build_t1_image([r for r in records if not r.derived], label)
            except InvalidAcquisitionError as error:
                rejected.append(Rejection((first.series_uid,), str(error)))
                continue
            used.add(first.series_uid)
            paths = tuple(sorted({*acquisition.input_paths, *(r.path for r in records)}))
            acquisition = replace(
                acquisition, t1=t1, t1_series_uid=first.series_uid, input_paths=paths
            )
            break
        attached.append(acquisition)
    failed = {r.series_uids[0] for r in rejected}
    rejected += [
        Rejection((uid,), "T1-weighted series without a GRE acquisition on its frame of reference")
        for uid in t1_series
        if uid not in used and uid not in failed
    ]
    return attached, rejected


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
    pairs, unpaired_phases = _paired(magnitude_only, phase_only)
    for magnitude, phase in pairs:
        if phase is None:
            rejected.append(Rejection((magnitude[0].series_uid,), "no phase images"))
        else:
            candidates.append((magnitude + phase, ("magnitude", "phase")))
    rejected += [Rejection((p[0].series_uid,), "no magnitude images") for p in unpaired_phases]
    return candidates, rejected


Series = list[FrameRecord]


def _paired(
    magnitudes: list[Series], phases: list[Series]
) -> tuple[list[tuple[Series, Series | None]], list[Series]]:
    """Pair magnitude and phase series best match first over the whole study; returns the
    magnitudes (in series order) with their phase or None, and the phases left over.

    Same frame of reference required; then the most alike (echo times, matrix, description),
    then the nearest series number. Choosing globally, not magnitude by magnitude in series
    order, keeps an earlier single-echo series from taking the phase that belongs to the GRE.
    """
    options = sorted(
        (_mismatch(magnitude, phase), m, p)
        for m, magnitude in enumerate(magnitudes)
        for p, phase in enumerate(phases)
        if phase[0].frame_of_reference_uid == magnitude[0].frame_of_reference_uid
    )
    partner: dict[int, int] = {}
    for _, m, p in options:
        if m not in partner and p not in partner.values():
            partner[m] = p
    pairs = [
        (magnitude, phases[partner[m]] if m in partner else None)
        for m, magnitude in enumerate(magnitudes)
    ]
    pairs.sort(key=lambda pair: pair[0][0].series_number)
    taken = set(partner.values())
    return pairs, [phase for p, phase in enumerate(phases) if p not in taken]


def _mismatch(magnitude: Series, phase: Series) -> tuple[int, int, int, int]:
    first, other = magnitude[0], phase[0]
    return (
        int({r.te_ms for r in phase} != {r.te_ms for r in magnitude}),
        int((other.rows, other.columns) != (first.rows, first.columns)),
        int(other.series_description != first.series_description),
        abs(other.series_number - first.series_number - 1),
    )


def _acquisition_key(used: list[FrameRecord]) -> str:
    """SHA-256 of the sorted SOP Instance UIDs: the same images always give the same key."""
    return hashlib.sha256("\n".join(sorted({r.sop_uid for r in used})).encode()).hexdigest()


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
        idempotency_key=_acquisition_key(used),
        sop_instance_uids=sop_uids,
        source=first.source,
        reference_paths=_reference_paths(used, kinds[0]),
        input_paths=tuple(sorted({r.path for r in used})),
        model=first.manufacturer_model,
    )


def _reference_paths(records: list[FrameRecord], kind: ImageKind) -> tuple[Path, ...]:
    """First-echo files of `kind` sorted along the slice normal, as the volume builder orders z;
    an Enhanced MR object holds every slice in one file, so each path appears once."""
    echoes = {id(r): round(r.te_ms, TE_DECIMALS) for r in records if r.kind == kind and r.te_ms}
    first_te = min(echoes.values())
    stack = [r for r in records if echoes.get(id(r)) == first_te]
    normal = slice_normal(stack[0].orientation)
    stack.sort(key=lambda r: float(np.dot(r.position_lps, normal)))
    return tuple(dict.fromkeys(r.path for r in stack))
