"""Deep grey matter segmentation on the acquisition grid, with its QC verdict.

Atlas method (`monitor.segment.atlas_method`): the subject (GRE magnitude, or a same-session
T1 when given) is registered to the MNI152 2009 template and the Harvard-Oxford probabilities
are pulled back onto the acquisition grid. External method: labels computed elsewhere.

QC is per structure and side: a registration failure withholds everything, while an
implausible structure (volume, asymmetry, volume against the registered atlas, slab coverage)
withholds that structure only. No exception escapes: any failure returns a `Segmentation`
with ``reportable=False`` and a one-line reason.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from monitor.segment.atlas_method import atlas_labels
from monitor.segment.chi_model import ChiModel
from monitor.segment.external import ExternalLabels, labels_on_grid, read_nifti_labels
from monitor.segment.grid import voxel_sizes_mm
from monitor.segment.qc import (
    asymmetry_problems,
    expected_volume_problems,
    structure_volumes_ml,
    volume_problems,
)
from monitor.segment.registration import reproducible_registration
from monitor.segment.result import Segmentation
from monitor.segment.structures import LABEL_NAMES, REPORTED_NAMES
from monitor.segment.t1_input import T1Image, as_t1_image
from monitor.settings import SegmentationSettings

__all__ = ["segment_deep_grey"]

log = logging.getLogger(__name__)

MIN_BRAIN_ML = 50.0
"""Less brain than this cannot anchor a registration (a few slices at most)."""


def segment_deep_grey(  # noqa: PLR0913 - the pipeline's data, named in the design
    magnitude_3d: np.ndarray,
    affine_ras: np.ndarray,
    mask: np.ndarray,
    settings: SegmentationSettings,
    chi_ppm: np.ndarray | None = None,
    external_labels: Path | ExternalLabels | None = None,
    *,
    t1: T1Image | tuple[np.ndarray, np.ndarray] | None = None,
) -> Segmentation:
    """Label thalamus, caudate, putamen and globus pallidus (left/right) on the acquisition grid.

    `magnitude_3d` is the first-echo or echo-combined magnitude, `mask` the brain mask from
    reconstruction, `affine_ras` the voxel-to-RAS+ affine. With ``settings.method ==
    "external"`` the labels come from `external_labels` (a label NIfTI, or labels the DICOM
    adapter read from a DICOM SEG, in the same frame of reference) instead of the atlas.
    `t1` (optional, same session: array and voxel-to-RAS+ affine) makes the T1 the image
    registered to the template; ``qc["registration_path"]`` says "t1" or "gre".
    """
    start = time.perf_counter()
    shape = tuple(np.shape(magnitude_3d))
    try:
        problem = _input_problem(magnitude_3d, affine_ras, mask, chi_ppm)
        if problem:
            return _failed(shape, settings.method, problem)
        voxel_mm = voxel_sizes_mm(affine_ras)
        qc: dict[str, Any] = {}
        failures: list[str] = []
        withheld: dict[str, list[str]] = {}
        expected_ml: dict[str, float] = {}
        head_volume_factor = 1.0
        chi_model: ChiModel | None = None
        if settings.method == "external":
            if external_labels is None:
                return _failed(shape, "external", "external segmentation configured, none given")
            if not isinstance(external_labels, ExternalLabels):
                external_labels = read_nifti_labels(external_labels, settings)
            labels = labels_on_grid(external_labels, affine_ras, shape)
        else:
            with reproducible_registration():
                atlas = atlas_labels(
                    magnitude_3d,
                    affine_ras,
                    mask.astype(bool),
                    settings,
                    chi_ppm,
                    None if t1 is None else as_t1_image(t1),
                )
            labels, qc, failures, expected_ml = (
                atlas.labels,
                atlas.qc,
                atlas.failures,
                atlas.expected_ml,
            )
            head_volume_factor, chi_model = atlas.head_volume_factor, atlas.chi_model
            _add(withheld, atlas.withheld)
        labels = np.where(mask.astype(bool), labels, 0).astype(np.int16)
        volumes = structure_volumes_ml(labels, LABEL_NAMES, voxel_mm)
        _add(withheld, volume_problems(volumes, settings.volume_ranges_ml, head_volume_factor))
        if expected_ml:
            reported = {name: expected_ml[name] for name in REPORTED_NAMES}
            _add(
                withheld,
                expected_volume_problems(volumes, reported, settings.expected_volume_ratio),
            )
        _add(withheld, asymmetry_problems(volumes, settings.max_side_volume_ratio, withheld))
        qc["volumes_ml"] = volumes
        qc["seconds"] = time.perf_counter() - start
        return _verdict(labels, settings.method, failures, withheld, qc, chi_model)
    except Exception as exc:  # a segmentation failure must become a verdict, not a crash
        log.exception("segmentation failed")
        return _failed(shape, settings.method, f"segmentation failed: {type(exc).__name__}: {exc}")


def _add(withheld: dict[str, list[str]], failures: dict[str, str]) -> None:
    for name, reason in failures.items():
        withheld.setdefault(name, []).append(reason)


def _verdict(
    labels: np.ndarray,
    method: str,
    failures: list[str],
    withheld_reasons: dict[str, list[str]],
    qc: dict[str, Any],
    chi_model: ChiModel | None = None,
) -> Segmentation:
    """Registration failures withhold everything; structure failures withhold that structure
    (both removed from `label_names` so measurement gives them no values)."""
    withheld = {name: "; ".join(reasons) for name, reasons in withheld_reasons.items()}
    qc["withheld"] = withheld
    left = [name for name in REPORTED_NAMES if name not in withheld]
    reasons = failures + [f"{name} withheld: {why}" for name, why in withheld.items()]
    if not left and not failures:
        reasons.insert(0, "every structure withheld")
    reportable = not failures and bool(left)
    names = (
        {k: v for k, v in LABEL_NAMES.items() if v not in withheld} if reportable else LABEL_NAMES
    )
    return Segmentation(
        labels=labels,
        label_names=MappingProxyType(dict(names)),
        method=method,
        reportable=reportable,
        reason="; ".join(reasons),
        qc=MappingProxyType(qc),
        withheld=MappingProxyType(withheld),
        chi_model=chi_model if reportable else None,
    )


def _failed(shape: tuple[int, ...], method: str, reason: str) -> Segmentation:
    zeros = np.zeros(shape if len(shape) == 3 else (0, 0, 0), dtype=np.int16)
    return Segmentation(zeros, LABEL_NAMES, method, reportable=False, reason=reason)


def _input_problem(
    magnitude: np.ndarray, affine: np.ndarray, mask: np.ndarray, chi: np.ndarray | None
) -> str:
    if np.ndim(magnitude) != 3:
        return f"magnitude must be 3-D, got shape {np.shape(magnitude)}"
    if np.shape(mask) != np.shape(magnitude):
        return f"mask shape {np.shape(mask)} differs from magnitude {np.shape(magnitude)}"
    if chi is not None and np.shape(chi) != np.shape(magnitude):
        return f"chi shape {np.shape(chi)} differs from magnitude {np.shape(magnitude)}"
    if np.shape(affine) != (4, 4) or abs(np.linalg.det(np.asarray(affine)[:3, :3])) < 1e-9:
        return "affine must be an invertible 4x4 matrix"
    if not np.isfinite(magnitude).all():
        return "magnitude contains NaN or infinite values"
    brain_ml = np.count_nonzero(mask) * abs(np.linalg.det(np.asarray(affine)[:3, :3])) / 1000.0
    if brain_ml < MIN_BRAIN_ML:
        return f"brain mask of {brain_ml:.0f} ml is smaller than {MIN_BRAIN_ML:.0f} ml"
    return ""
