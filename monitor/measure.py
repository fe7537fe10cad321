"""Susceptibility statistics per deep grey matter structure, in ppb.

Reconstruction works in ppm; reports use ppb (1 ppm = 1000 ppb), and the conversion happens
here, once. Two rules keep partial-volume voxels out of the numbers:

* only voxels inside the brain mask count (the mask edge carries background-removal errors);
* each structure is eroded by ``erode_voxels`` voxels *in-plane* (within the two finely sampled
  axes, never across the thick slice axis) before statistics are taken. With 1x1x2 mm voxels
  one in-plane voxel removes the 1 mm rim where a structure's susceptibility blends with the
  white matter or CSF around it, while eroding across 2 mm slices would also drop the top and
  bottom 2 mm of a pallidum only about ten slices high. The reported ``volume_ml`` is the
  segmented (un-eroded) volume; ``voxel_count`` is the number of voxels behind the statistics.

Values are re-referenced here so the report states exactly what zero means: "whole_brain" sets
the mean over the brain mask to zero, "csf" the mean over the (eroded) lateral ventricles.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
from scipy import ndimage

from monitor.segment.structures import CSF_LABELS, SIDES, STRUCTURES

PPB_PER_PPM = 1000.0
REFERENCES = ("whole_brain", "csf")


@dataclass(frozen=True)
class StructureStats:
    """Statistics of one region; NaN statistics mean no voxel survived erosion and masking."""

    name: str
    mean_ppb: float
    median_ppb: float
    sd_ppb: float
    volume_ml: float
    voxel_count: int


@dataclass(frozen=True)
class StructureMeasurements:
    per_side: Mapping[str, StructureStats]
    """Keyed "putamen_left", "putamen_right", ..."""
    bilateral: Mapping[str, StructureStats]
    """Keyed "putamen", ...: both sides pooled voxel by voxel."""
    reference: str
    reference_offset_ppb: float
    """Mean of the reference region in the input map, subtracted from every value."""
    erode_voxels: int
    whole_brain_mean_ppb: float = 0.0
    """Mean over the brain mask on the reported scale (0 with the whole-brain reference).
    Subtracting it from any value gives that value against the whole brain, which the 2024
    QSM consensus asks to report beside any other reference."""


def _slice_axis(voxel_mm: tuple[float, float, float]) -> int:
    """The coarsest axis is the slice axis; for isotropic voxels the third axis by convention."""
    spacing = np.asarray(voxel_mm, dtype=float)
    return int(np.argmax(spacing)) if np.ptp(spacing) > 1e-6 else 2


def erode_in_plane(
    region: np.ndarray, voxel_mm: tuple[float, float, float], voxels: int
) -> np.ndarray:
    """Erode a boolean region within planes perpendicular to the slice axis."""
    if voxels == 0:
        return region.astype(bool)
    plane = np.zeros((3, 3, 3), dtype=bool)
    index: list[slice | int] = [slice(None)] * 3
    index[_slice_axis(voxel_mm)] = 1
    plane[tuple(index)] = ndimage.generate_binary_structure(2, 1)
    return ndimage.binary_erosion(region, structure=plane, iterations=voxels)


def _stats(
    name: str, values_ppb: np.ndarray, segmented_voxels: int, voxel_ml: float
) -> StructureStats:
    if values_ppb.size == 0:
        nan = float("nan")
        return StructureStats(name, nan, nan, nan, segmented_voxels * voxel_ml, 0)
    return StructureStats(
        name=name,
        mean_ppb=float(values_ppb.mean()),
        median_ppb=float(np.median(values_ppb)),
        sd_ppb=float(values_ppb.std(ddof=1)) if values_ppb.size > 1 else 0.0,
        volume_ml=segmented_voxels * voxel_ml,
        voxel_count=int(values_ppb.size),
    )


def _no_values(name: str) -> StructureStats:
    """A structure segmentation withheld: no statistics and no volume (not a 0 ml one)."""
    nan = float("nan")
    return StructureStats(name, nan, nan, nan, nan, 0)


def _reference_offset_ppb(
    chi_ppb: np.ndarray,
    regions: Mapping[str, np.ndarray],
    mask: np.ndarray,
    reference: str,
) -> float:
    if reference == "whole_brain":
        return float(chi_ppb[mask].mean())
    csf = np.zeros_like(mask)
    for name in CSF_LABELS:
        if name in regions:
            csf |= regions[name]
    if not csf.any():
        raise ValueError("CSF reference requested but the segmentation has no ventricle voxels")
    return float(chi_ppb[csf].mean())


def measure_structures(  # noqa: PLR0913 - the pipeline's data, named in the design
    chi_ppm: np.ndarray,
    labels: np.ndarray,
    label_names: Mapping[int, str],
    mask: np.ndarray,
    voxel_mm: tuple[float, float, float],
    reference: str,
    erode_voxels: int = 1,
) -> StructureMeasurements:
    """Per-side and bilateral statistics (ppb) for every reported structure in `labels`.

    A structure missing from `label_names` (segmentation QC withheld it) gets no values:
    NaN statistics and volume, zero voxels, and no bilateral value for its structure.
    """
    if reference not in REFERENCES:
        raise ValueError(f"unknown reference {reference!r}; expected one of {REFERENCES}")
    if chi_ppm.shape != labels.shape or chi_ppm.shape != mask.shape:
        raise ValueError(
            f"chi {chi_ppm.shape}, labels {labels.shape} and mask {mask.shape} differ in shape"
        )
    if erode_voxels < 0:
        raise ValueError(f"erode_voxels must be >= 0, got {erode_voxels}")
    inside = mask.astype(bool)
    if not inside.any():
        raise ValueError("the brain mask is empty")
    chi_ppb = np.asarray(chi_ppm, dtype=np.float64) * PPB_PER_PPM
    voxel_ml = float(np.prod(voxel_mm)) / 1000.0

    segmented = {name: (labels == label) & inside for label, name in label_names.items()}
    measured = {
        name: erode_in_plane(r, voxel_mm, erode_voxels) & inside for name, r in segmented.items()
    }
    offset = _reference_offset_ppb(chi_ppb, measured, inside, reference)
    referenced = chi_ppb - offset

    per_side: dict[str, StructureStats] = {}
    bilateral: dict[str, StructureStats] = {}
    for structure in STRUCTURES:
        names = [f"{structure}_{side}" for side in SIDES]
        for name in names:
            per_side[name] = (
                _stats(name, referenced[measured[name]], int(segmented[name].sum()), voxel_ml)
                if name in segmented
                else _no_values(name)
            )
        if not all(name in segmented for name in names):
            # A side left out of `label_names` (withheld by segmentation QC): the other side
            # alone is not a bilateral value, so there is none.
            bilateral[structure] = _no_values(structure)
            continue
        both = np.logical_or.reduce([measured[n] for n in names])
        both_segmented = int(sum(segmented[n].sum() for n in names))
        bilateral[structure] = _stats(structure, referenced[both], both_segmented, voxel_ml)
    return StructureMeasurements(
        per_side=MappingProxyType(per_side),
        bilateral=MappingProxyType(bilateral),
        reference=reference,
        reference_offset_ppb=offset,
        erode_voxels=erode_voxels,
        whole_brain_mean_ppb=float(referenced[inside].mean()),
    )


def report_block(measurements: StructureMeasurements) -> dict[str, Any]:
    """The JSON block consumed by reports: bilateral mean/median/SD, per-side means, volume,
    and under "sides" each side's full statistics (tracking scores and compares sides too)."""
    block: dict[str, Any] = {}
    for structure, stats in measurements.bilateral.items():
        sides = {side: measurements.per_side[f"{structure}_{side}"] for side in SIDES}
        block[structure] = {
            "mean_ppb": stats.mean_ppb,
            "left_ppb": sides["left"].mean_ppb,
            "right_ppb": sides["right"].mean_ppb,
            "median_ppb": stats.median_ppb,
            "sd_ppb": stats.sd_ppb,
            "volume_ml": stats.volume_ml,
            "voxel_count": stats.voxel_count,
            "sides": {side: _side_stats(side_stats) for side, side_stats in sides.items()},
        }
    block["reference"] = measurements.reference
    block["whole_brain_mean_ppb"] = measurements.whole_brain_mean_ppb
    return block


def _side_stats(stats: StructureStats) -> dict[str, Any]:
    return {
        "mean_ppb": stats.mean_ppb,
        "median_ppb": stats.median_ppb,
        "sd_ppb": stats.sd_ppb,
        "volume_ml": stats.volume_ml,
        "voxel_count": stats.voxel_count,
    }
