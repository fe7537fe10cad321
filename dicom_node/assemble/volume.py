"""Turn the frame records of one candidate acquisition into an `Acquisition`, or one reason why not.

Every check raises `InvalidAcquisitionError` with a single plain reason; the caller turns it into
a rejection. Checks run on headers first (echoes, geometry, slice spacing) so a broken series
costs no pixel decoding.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import dcmread

from dicom_node.assemble.scan import FrameRecord, ImageKind
from dicom_node.assemble.vendor_phase import PhaseScalingError, phase_to_radians
from dicom_node.geometry import affine_from_geometry, slice_normal
from monitor.types import (
    MIN_ECHOES,
    Acquisition,
    InvalidAcquisitionError,
    T1Image,
    b0_direction_in_voxel_axes,
)

DECUBITUS_POSITIONS = frozenset({"HFDR", "HFDL", "FFDR", "FFDL"})
TE_DECIMALS = 3
"""Echo times are matched to the microsecond: scanners write TE with rounding noise below it."""
_ORIENTATION_TOL = 1e-4
_POSITION_TOL_MM = 0.01
_SPACING_REL_TOL = 0.01


@dataclass(frozen=True)
class _Stack:
    """The sorted slices of one (kind, echo): the unit whose geometry is compared."""

    records: list[FrameRecord]
    distances_mm: np.ndarray


def build_acquisition(
    records: Sequence[FrameRecord], kinds: tuple[ImageKind, ImageKind], label: str
) -> Acquisition:
    """`kinds` is ("magnitude", "phase") or ("real", "imaginary")."""
    _check_patient_position(records)
    stacks = _stacks(records, kinds)
    te_ms = sorted({te for _, te in stacks})
    reference = stacks[(kinds[0], te_ms[0])]
    first = reference.records[0]
    spacing = _uniform_spacing(reference.distances_mm)
    step = _slice_step(reference, spacing)
    affine = affine_from_geometry(
        first.orientation, first.pixel_spacing_mm, first.position_lps, step
    )
    b0_tesla = first.b0_tesla
    if b0_tesla is None:
        raise InvalidAcquisitionError("no field strength (MagneticFieldStrength) in the header")
    if kinds == ("real", "imaginary"):
        complex_data = _load(stacks, "real", te_ms) + 1j * _load(stacks, "imaginary", te_ms)
        magnitude, phase = np.abs(complex_data), np.angle(complex_data)
    else:
        magnitude, phase = _load(stacks, "magnitude", te_ms), _phase_radians(stacks, te_ms)
    row_spacing, column_spacing = (float(v) for v in first.pixel_spacing_mm)
    return Acquisition(
        magnitude=magnitude.astype(np.float32, copy=False),
        phase_rad=phase.astype(np.float32, copy=False),
        te_s=tuple(te / 1000.0 for te in te_ms),
        voxel_mm=(column_spacing, row_spacing, spacing),
        b0_tesla=float(b0_tesla),
        b0_dir_voxel=b0_direction_in_voxel_axes(affine),
        affine_ras=affine,
        label=label,
    )


def build_t1_image(records: Sequence[FrameRecord], label: str) -> T1Image:
    """One single-echo magnitude series as a 3-D volume with its affine (same checks of
    plane, spacing and slice order as the GRE echoes)."""
    usable = [r for r in records if r.kind == "magnitude"]
    if not usable or any(r.position_lps is None or r.orientation is None for r in usable):
        raise InvalidAcquisitionError("T1: an image has no position or orientation")
    if any(r.pixel_spacing_mm is None for r in usable):
        raise InvalidAcquisitionError("T1: an image has no pixel spacing")
    _check_same_plane(usable)
    stack = _sorted_stack(usable)
    first = stack.records[0]
    step = _slice_step(stack, _uniform_spacing(stack.distances_mm))
    affine = affine_from_geometry(
        first.orientation, first.pixel_spacing_mm, first.position_lps, step
    )
    te = round(first.te_ms or 0.0, TE_DECIMALS)
    volume = _load({("magnitude", te): stack}, "magnitude", [te])[..., 0]
    return T1Image(intensity=volume, affine_ras=affine, label=label)


def _check_patient_position(records: Sequence[FrameRecord]) -> None:
    """B0 is taken along patient z; decubitus scans are refused until that is validated."""
    positions = {r.patient_position for r in records}
    if positions & DECUBITUS_POSITIONS:
        raise InvalidAcquisitionError(
            f"decubitus patient position {sorted(positions & DECUBITUS_POSITIONS)[0]} "
            "is not supported"
        )


def _stacks(
    records: Sequence[FrameRecord], kinds: tuple[ImageKind, ImageKind]
) -> dict[tuple[str, float], _Stack]:
    """Group by (kind, echo time), sort along the slice normal and cross-check everything."""
    grouped: dict[tuple[str, float], list[FrameRecord]] = defaultdict(list)
    for record in records:
        if record.kind not in kinds:
            continue
        if record.te_ms is None or record.te_ms <= 0:
            raise InvalidAcquisitionError("an image has no echo time")
        if record.position_lps is None or record.orientation is None:
            raise InvalidAcquisitionError("an image has no position or orientation")
        if record.pixel_spacing_mm is None:
            raise InvalidAcquisitionError("an image has no pixel spacing")
        grouped[(record.kind, round(record.te_ms, TE_DECIMALS))].append(record)
    echoes = {kind: sorted(te for k, te in grouped if k == kind) for kind in kinds}
    if echoes[kinds[0]] != echoes[kinds[1]]:
        raise InvalidAcquisitionError(f"echo times differ between {kinds[0]} and {kinds[1]}")
    if len(echoes[kinds[0]]) < MIN_ECHOES:
        raise InvalidAcquisitionError("single echo: a multi-echo gradient echo is needed")
    _check_same_plane(records)
    stacks = {key: _sorted_stack(group) for key, group in grouped.items()}
    counts = {key: len(stack.records) for key, stack in stacks.items()}
    if len(set(counts.values())) > 1:
        (kind, te), fewest = min(counts.items(), key=lambda item: item[1])
        raise InvalidAcquisitionError(
            f"missing slice: {kind} echo at {te:g} ms has {fewest} of {max(counts.values())} slices"
        )
    reference = next(iter(stacks.values())).distances_mm
    for stack in stacks.values():
        if np.max(np.abs(stack.distances_mm - reference)) > _POSITION_TOL_MM:
            raise InvalidAcquisitionError(
                "geometry mismatch: slice positions differ between echoes or image kinds"
            )
    return stacks


def _check_same_plane(records: Sequence[FrameRecord]) -> None:
    first = records[0]
    for record in records:
        if (record.rows, record.columns) != (first.rows, first.columns):
            raise InvalidAcquisitionError("geometry mismatch: image matrix sizes differ")
        if np.max(np.abs(record.orientation - first.orientation)) > _ORIENTATION_TOL:
            raise InvalidAcquisitionError("geometry mismatch: slice orientations differ")
        if np.max(np.abs(record.pixel_spacing_mm - first.pixel_spacing_mm)) > 1e-4:
            raise InvalidAcquisitionError("geometry mismatch: pixel spacings differ")


def _sorted_stack(records: list[FrameRecord]) -> _Stack:
    normal = slice_normal(records[0].orientation)
    distances = np.array([float(np.dot(r.position_lps, normal)) for r in records])
    order = np.argsort(distances, kind="stable")
    distances = distances[order]
    if np.any(np.diff(distances) < _POSITION_TOL_MM):
        raise InvalidAcquisitionError("duplicate slice position within one echo")
    return _Stack([records[i] for i in order], distances)


def _uniform_spacing(distances_mm: np.ndarray) -> float:
    """The slice spacing, or a reason: a gap of whole spacings means a slice is missing."""
    if len(distances_mm) < 2:
        raise InvalidAcquisitionError("only one slice: a 3-D volume is needed")
    gaps = np.diff(distances_mm)
    spacing = float(np.min(gaps))
    ratios = gaps / spacing
    if np.all(np.abs(ratios - 1.0) <= _SPACING_REL_TOL):
        return float(np.mean(gaps))
    if np.all(np.abs(ratios - np.round(ratios)) <= _SPACING_REL_TOL):
        raise InvalidAcquisitionError("missing slice: gap in slice positions")
    raise InvalidAcquisitionError("non-uniform slice spacing")


def _slice_step(stack: _Stack, spacing_mm: float) -> np.ndarray:
    """Mean step between slice positions; refuses stacks that are not along their normal."""
    positions = np.array([r.position_lps for r in stack.records])
    step = (positions[-1] - positions[0]) / (len(positions) - 1)
    normal = slice_normal(stack.records[0].orientation)
    if np.linalg.norm(step - spacing_mm * normal) > _POSITION_TOL_MM * 10:
        raise InvalidAcquisitionError("geometry mismatch: slices are sheared off their normal")
    return step


def _load(stacks: dict[tuple[str, float], _Stack], kind: str, te_ms: list[float]) -> np.ndarray:
    """Rescaled pixel values as (x, y, z, echo); each file is decoded once."""
    wanted = [
        (z, e, r) for e, te in enumerate(te_ms) for z, r in enumerate(stacks[(kind, te)].records)
    ]
    first = wanted[0][2]
    volume = np.zeros(
        (first.columns, first.rows, len(stacks[(kind, te_ms[0])].records), len(te_ms)),
        dtype=np.float32,
    )
    by_path: dict[Path, list[tuple[int, int, FrameRecord]]] = defaultdict(list)
    for z, e, record in wanted:
        by_path[record.path].append((z, e, record))
    for path, items in by_path.items():
        try:
            pixels = dcmread(path).pixel_array
        except Exception as error:  # any decoder failure (plugin, truncation) is one reason
            raise InvalidAcquisitionError(
                f"cannot decode pixel data: {type(error).__name__}"
            ) from error
        for z, e, record in items:
            frame = pixels if record.frame_index is None else pixels[record.frame_index]
            rescaled = frame.astype(np.float64) * record.stored.slope + record.stored.intercept
            volume[:, :, z, e] = rescaled.T
    return volume


def _phase_radians(stacks: dict[tuple[str, float], _Stack], te_ms: list[float]) -> np.ndarray:
    """Phase volume in radians; the vendor scaling is decided per slice from its own rescale."""
    phase = _load(stacks, "phase", te_ms)
    for e, te in enumerate(te_ms):
        for z, record in enumerate(stacks[("phase", te)].records):
            try:
                phase[:, :, z, e] = phase_to_radians(
                    phase[:, :, z, e], record.stored, record.manufacturer
                )
            except PhaseScalingError as error:
                raise InvalidAcquisitionError(str(error)) from error
    return phase
