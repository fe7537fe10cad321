"""Deep grey matter segmentation on the acquisition grid, with its QC verdict.

Atlas method: the subject's magnitude is registered to the MNI152 2009 template (rigid, then
affine, on a 2 mm grid), a local B-spline refinement follows around the deep grey matter
(on the susceptibility map when available, where iron outlines the nuclei; otherwise on the
magnitude), and the Harvard-Oxford probabilities are pulled back onto the acquisition grid
and labelled by maximum probability. No exception escapes: any failure returns a
`Segmentation` with ``reportable=False`` and a one-line reason.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import SimpleITK as sitk

from monitor.segment.atlas import max_probability_labels, warp_probabilities
from monitor.segment.external import ExternalLabels, labels_on_grid, read_nifti_labels
from monitor.segment.grid import from_sitk, resample_isotropic, to_sitk
from monitor.segment.qc import (
    coverage_failures,
    registration_failures,
    structure_volumes_ml,
    volume_failures,
)
from monitor.segment.registration import (
    RegistrationParameters,
    affine_scales,
    normalised_mutual_information,
    refine_bspline,
    register_affine,
)
from monitor.segment.result import Segmentation
from monitor.segment.structures import CSF_LABELS, LABEL_IDS, LABEL_NAMES
from monitor.segment.template import RegistrationTemplate, registration_template
from monitor.settings import SegmentationSettings

log = logging.getLogger(__name__)

COVERAGE_MARGIN_MM = 40.0
"""How far beyond the slab atlas mass is still found (a structure is at most ~40 mm long)."""

MIN_BRAIN_ML = 50.0
"""Less brain than this cannot anchor a registration (a few slices at most)."""

OUTLINE_MARGIN_MM = 8.0
"""The linear stages score the brain and this much of its surroundings: with the brain mask
alone, the metric never sees template brain falling outside the subject's brain, and on
simulated heads with large poses the optimum scaled the template by 0.8-1.3 per axis."""

CHI_CLIP_PPM = (-0.1, 0.3)
"""Veins and haemorrhage beyond this range would dominate the refinement's histogram."""


def segment_deep_grey(  # noqa: PLR0913 - the pipeline's data, named in the design
    magnitude_3d: np.ndarray,
    affine_ras: np.ndarray,
    mask: np.ndarray,
    settings: SegmentationSettings,
    chi_ppm: np.ndarray | None = None,
    external_labels: Path | ExternalLabels | None = None,
) -> Segmentation:
    """Label thalamus, caudate, putamen and globus pallidus (left/right) on the acquisition grid.

    `magnitude_3d` is the first-echo or echo-combined magnitude, `mask` the brain mask from
    reconstruction, `affine_ras` the voxel-to-RAS+ affine. With ``settings.method ==
    "external"`` the labels come from `external_labels` (a label NIfTI, or labels the DICOM
    adapter read from a DICOM SEG, in the same frame of reference) instead of the atlas.
    """
    start = time.perf_counter()
    shape = tuple(np.shape(magnitude_3d))
    try:
        problem = _input_problem(magnitude_3d, affine_ras, mask, chi_ppm)
        if problem:
            return _failed(shape, settings.method, problem)
        voxel_mm = _voxel_mm(affine_ras)
        if settings.method == "external":
            if external_labels is None:
                return _failed(shape, "external", "external segmentation configured, none given")
            if not isinstance(external_labels, ExternalLabels):
                external_labels = read_nifti_labels(external_labels, settings)
            labels = labels_on_grid(external_labels, affine_ras, shape)
            qc: dict[str, Any] = {}
            failures: list[str] = []
        else:
            labels, qc, failures = _atlas_labels(
                magnitude_3d, affine_ras, mask.astype(bool), settings, chi_ppm
            )
        labels = np.where(mask.astype(bool), labels, 0).astype(np.int16)
        volumes = structure_volumes_ml(labels, LABEL_NAMES, voxel_mm)
        failures += volume_failures(volumes, settings.volume_ranges_ml)
        qc["volumes_ml"] = volumes
        qc["seconds"] = time.perf_counter() - start
        return Segmentation(
            labels=labels,
            label_names=LABEL_NAMES,
            method=settings.method,
            reportable=not failures,
            reason="; ".join(failures),
            qc=MappingProxyType(qc),
        )
    except Exception as exc:  # a segmentation failure must become a verdict, not a crash
        log.exception("segmentation failed")
        return _failed(shape, settings.method, f"segmentation failed: {type(exc).__name__}: {exc}")


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


def _voxel_mm(affine_ras: np.ndarray) -> tuple[float, float, float]:
    sizes = np.linalg.norm(np.asarray(affine_ras, dtype=float)[:3, :3], axis=0)
    return (float(sizes[0]), float(sizes[1]), float(sizes[2]))


def _normalised(volume: np.ndarray, inside: np.ndarray, clip: tuple[float, float]) -> np.ndarray:
    return np.where(inside, np.clip(volume, *clip), 0.0).astype(np.float32)


def _voxels(mm: float, voxel_mm: float) -> int:
    return max(int(round(mm / voxel_mm)), 1)


def _binary(image: sitk.Image) -> sitk.Image:
    return sitk.Cast(image > 0.5, sitk.sitkUInt8)


def _dice(a: sitk.Image, b: sitk.Image) -> float:
    overlap = sitk.LabelOverlapMeasuresImageFilter()
    overlap.Execute(a, b)
    return float(overlap.GetDiceCoefficient())


def _atlas_labels(
    magnitude: np.ndarray,
    affine_ras: np.ndarray,
    inside: np.ndarray,
    settings: SegmentationSettings,
    chi_ppm: np.ndarray | None,
) -> tuple[np.ndarray, dict[str, Any], list[str]]:
    template = registration_template(settings.registration_voxel_mm)
    params = RegistrationParameters(bspline_mesh_mm=settings.bspline_mesh_mm)
    grid_mm = settings.registration_voxel_mm

    bright = float(np.percentile(magnitude[inside], 99))
    fixed = resample_isotropic(
        to_sitk(_normalised(magnitude / bright, inside, (0.0, 1.5)), affine_ras), grid_mm
    )
    fixed_mask = _binary(
        resample_isotropic(to_sitk(inside.astype(np.float32), affine_ras), grid_mm)
    )
    outline_mask = sitk.BinaryDilate(fixed_mask, [_voxels(OUTLINE_MARGIN_MM, grid_mm)] * 3)
    affine = register_affine(fixed, outline_mask, template.t1, params)
    scales = affine_scales(affine)

    region = sitk.Resample(template.region, fixed, affine, sitk.sitkNearestNeighbor, 0) * fixed_mask
    transform: sitk.Transform = affine
    refined_on = "none"
    if sitk.GetArrayViewFromImage(region).any():
        if chi_ppm is not None and settings.use_chi_for_registration:
            chi = to_sitk(_normalised(chi_ppm, inside, CHI_CLIP_PPM), affine_ras)
            transform = refine_bspline(
                resample_isotropic(chi, grid_mm), region, template.pseudo_chi, affine, params
            )
            refined_on = "chi"
        else:
            transform = refine_bspline(fixed, region, template.t1, affine, params)
            refined_on = "magnitude"

    reference = to_sitk(np.zeros(inside.shape, dtype=np.float32), affine_ras)
    probabilities = warp_probabilities(
        template.probabilities, template.affine_ras, transform, reference
    )
    labels = max_probability_labels(
        probabilities, tuple(LABEL_IDS.values()), settings.probability_threshold, inside
    )
    coverage = _coverage(template, transform, fixed_mask)
    nmi = normalised_mutual_information(fixed, template.t1, fixed_mask, transform)
    warped_brain = sitk.Resample(template.brain, fixed, transform, sitk.sitkNearestNeighbor, 0)
    brain_dice = _dice(warped_brain, fixed_mask)
    failures = registration_failures(
        nmi,
        settings.min_similarity_nmi,
        brain_dice,
        settings.min_brain_overlap_dice,
        scales,
        settings.max_scale_deviation,
    ) + coverage_failures(coverage, settings.min_coverage_fraction)
    qc = {
        "similarity_nmi": nmi,
        "brain_overlap_dice": brain_dice,
        "affine_scales": scales,
        "coverage_fraction": coverage,
        "refined_on": refined_on,
    }
    return labels, qc, failures


def _coverage(
    template: RegistrationTemplate, transform: sitk.Transform, fixed_mask: sitk.Image
) -> dict[str, float]:
    """Fraction of each structure's atlas probability that lands inside the slab's brain mask.

    The atlas is pulled onto the registration grid extended by `COVERAGE_MARGIN_MM` on every
    side, so the part of a structure beyond the slab (or outside the mask) is still counted
    in the total; numerator and denominator share the transform, so local volume changes of
    the deformation cancel.
    """
    pad = int(np.ceil(COVERAGE_MARGIN_MM / min(fixed_mask.GetSpacing())))
    extended = sitk.ConstantPad(fixed_mask, [pad] * 3, [pad] * 3, 0)
    probabilities = warp_probabilities(
        template.probabilities, template.affine_ras, transform, extended
    )
    inside = from_sitk(extended) > 0
    coverage = {}
    for index, name in enumerate(LABEL_IDS):
        if name in CSF_LABELS:
            continue
        total = float(probabilities[index].sum())
        inside_mass = float(probabilities[index][inside].sum())
        coverage[name] = min(inside_mass / total, 1.0) if total > 0 else 0.0
    return coverage
