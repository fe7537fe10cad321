"""Subject-to-template registration with SimpleITK: rigid, affine, then local B-spline.

Mattes mutual information is used at every stage because gradient-echo magnitude is not
T1-weighted (grey matter is brighter than white matter, the reverse of the template), and
mutual information only asks that intensities be predictable from each other, not equal.
Transforms map subject physical points (LPS mm) to template points, the direction needed to
pull atlas probabilities onto the acquisition grid.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from monitor.segment.grid import from_sitk
from monitor.segment.initialise import search_start

_HISTOGRAM_BINS = 32

_THREADS_LOCK = threading.Lock()
_single_thread_users = 0
_saved_threads = 1


@contextmanager
def reproducible_registration() -> Iterator[None]:
    """Run SimpleITK single-threaded inside the block, so one input gives one result.

    ITK's multi-threaded Mattes metric adds up per-thread partial sums in the order the
    threads finish. The linear stages only move by ~1e-8 from that, but the B-spline stage
    amplifies it: on one varied head, control points differed by up to 2.4 mm between two
    runs of the same input, labels by ~0.5 %, ROI means over the labels by up to 0.34 ppb, and
    end to end a thalamus label came out 1.23x true in one run and withheld in another.
    Per-method thread counts left 1e-5 mm differences (other filters still threaded); the
    global default is what makes runs bit-identical. It costs
    about 10 s per segmentation on 2 cores. Nested and concurrent blocks share one setting:
    the first to enter saves the default, the last to leave restores it.
    """
    global _single_thread_users, _saved_threads  # noqa: PLW0603 - process-wide ITK setting
    with _THREADS_LOCK:
        if _single_thread_users == 0:
            _saved_threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
        _single_thread_users += 1
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _single_thread_users -= 1
            if _single_thread_users == 0:
                sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(_saved_threads)


@dataclass(frozen=True)
class RegistrationParameters:
    """Speed/accuracy knobs; defaults keep a whole-brain slab well under 90 s on 2 cores.

    Half the voxels in the metric (not a fifth) made the labels of a small structure steadier
    between scans: on the cohort phantom the worst change error fell from 2.6 to 1.8 ppb.
    """

    sampling_fraction: float = 0.5
    linear_iterations: int = 300
    bspline_iterations: int = 60
    bspline_mesh_mm: float = 20.0
    seed: int = 1


def mutual_information_method(
    params: RegistrationParameters, fixed_mask: sitk.Image
) -> sitk.ImageRegistrationMethod:
    """Mattes MI on a regular sample of `fixed_mask`, linear interpolation: every stage's base."""
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=_HISTOGRAM_BINS)
    # Regular sampling picks the same points on every run: results are reproducible.
    method.SetMetricSamplingStrategy(method.REGULAR)
    method.SetMetricSamplingPercentage(params.sampling_fraction, params.seed)
    method.SetMetricFixedMask(fixed_mask)
    method.SetInterpolator(sitk.sitkLinear)
    return method


def _linear_stage(
    fixed: sitk.Image,
    moving: sitk.Image,
    fixed_mask: sitk.Image,
    transform: sitk.Transform,
    params: RegistrationParameters,
) -> sitk.Transform:
    """Optimise `transform` in place, coarse to fine (8, 4, 2 mm on a 2 mm grid)."""
    method = mutual_information_method(params, fixed_mask)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=2.0,
        minStep=1e-4,
        numberOfIterations=params.linear_iterations,
        relaxationFactor=0.5,
        gradientMagnitudeTolerance=1e-8,
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([4, 2, 1])
    method.SetSmoothingSigmasPerLevel([4.0, 2.0, 0.0])
    method.SetInitialTransform(transform, inPlace=True)
    method.Execute(fixed, moving)
    return transform


def register_rigid(
    fixed: sitk.Image, fixed_mask: sitk.Image, moving: sitk.Image, params: RegistrationParameters
) -> sitk.Euler3DTransform:
    """Rigid registration from the identity about the fixed mask's centre.

    For two images of one session (T1 and GRE): the head moves by a few degrees and
    millimetres between them, so no search is needed.
    """
    shape = sitk.LabelShapeStatisticsImageFilter()
    shape.Execute(fixed_mask)
    rigid = sitk.Euler3DTransform()
    rigid.SetCenter(shape.GetCentroid(1))
    return _linear_stage(fixed, moving, fixed_mask, rigid, params)


def register_affine(
    fixed: sitk.Image, fixed_mask: sitk.Image, moving: sitk.Image, params: RegistrationParameters
) -> sitk.AffineTransform:
    """Similarity then affine registration of skull-free images from a searched start.

    The start comes from `monitor.segment.initialise.search_start` (a coarse grid of poses
    and sizes), so large head rotations, size differences and partial slabs do not trap the
    optimiser in a wrong optimum; the similarity stage settles pose and size before the
    affine stage adds shears and per-axis scaling.
    """
    similarity = _linear_stage(
        fixed, moving, fixed_mask, search_start(fixed, fixed_mask, moving), params
    )
    affine = sitk.AffineTransform(3)
    affine.SetCenter(similarity.GetCenter())
    affine.SetMatrix(similarity.GetMatrix())
    affine.SetTranslation(similarity.GetTranslation())
    return _linear_stage(fixed, moving, fixed_mask, affine, params)


def region_of_interest(fixed: sitk.Image, region_mask: sitk.Image) -> tuple[sitk.Image, sitk.Image]:
    """`fixed` and `region_mask` cropped to the mask's bounding box, where a deformable
    stage works: anatomy elsewhere neither steers nor pays for the deformation."""
    box = sitk.LabelShapeStatisticsImageFilter()
    box.Execute(region_mask)
    start, size = np.split(np.array(box.GetBoundingBox(1)), 2)
    index, extent = [int(s) for s in start], [int(s) for s in size]
    return (
        sitk.RegionOfInterest(fixed, extent, index),
        sitk.RegionOfInterest(region_mask, extent, index),
    )


def refine_bspline(
    fixed: sitk.Image,
    region_mask: sitk.Image,
    moving: sitk.Image,
    affine: sitk.Transform,
    params: RegistrationParameters,
) -> sitk.CompositeTransform:
    """Local B-spline correction over the region of interest only.

    The control grid spans the bounding box of `region_mask` (the deep grey matter and a
    margin): anatomy elsewhere does not influence, or pay for, the deformation we need.
    """
    roi, roi_mask = region_of_interest(fixed, region_mask)
    extent_mm = np.array(roi.GetSize()) * np.array(fixed.GetSpacing())
    mesh = [max(int(round(e / params.bspline_mesh_mm)), 1) for e in extent_mm]
    bspline = sitk.BSplineTransformInitializer(roi, mesh, order=3)
    method = mutual_information_method(params, roi_mask)
    method.SetOptimizerAsLBFGSB(
        gradientConvergenceTolerance=1e-5,
        numberOfIterations=params.bspline_iterations,
        maximumNumberOfCorrections=5,
        maximumNumberOfFunctionEvaluations=4 * params.bspline_iterations,
        costFunctionConvergenceFactor=1e7,
    )
    method.SetShrinkFactorsPerLevel([2, 1])
    method.SetSmoothingSigmasPerLevel([2.0, 0.0])
    method.SetMovingInitialTransform(affine)
    method.SetInitialTransform(bspline, inPlace=True)
    method.Execute(roi, moving)
    return sitk.CompositeTransform([affine, bspline])


def normalised_mutual_information(
    fixed: sitk.Image, moving: sitk.Image, mask: sitk.Image, transform: sitk.Transform
) -> float:
    """Studholme's NMI, (H(A) + H(B)) / H(A, B), over the fixed mask.

    Unlike the Mattes metric value it is bounded (1 to 2) and comparable between subjects,
    so it can carry a QC threshold.
    """
    warped = sitk.Resample(moving, fixed, transform, sitk.sitkLinear, 0.0)
    inside = from_sitk(mask) > 0
    a = from_sitk(fixed)[inside]
    b = from_sitk(warped)[inside]
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return 1.0
    joint, _, _ = np.histogram2d(a, b, bins=_HISTOGRAM_BINS)
    joint = joint / joint.sum()

    def entropy(p: np.ndarray) -> float:
        p = p[p > 0]
        return float(-(p * np.log(p)).sum())

    return (entropy(joint.sum(1)) + entropy(joint.sum(0))) / entropy(joint)


def b0_tilt_deg(transform: sitk.AffineTransform) -> tuple[float, float]:
    """How far B0 leans away from the head's superior-inferior axis: (towards the head's
    left, towards its back), degrees, from the subject-to-template affine.

    B0 runs along the patient z axis (LPS or RAS alike) in the supine and prone positions;
    the affine carries that direction into the template (LPS), whose axes are the head's.
    Recorded in QC because the map's left-right agreement depends on the first angle
    (docs/segmentation.md): a site can read its visits' tilts beside their values.
    """
    matrix = np.array(transform.GetMatrix()).reshape(3, 3)
    direction = matrix @ np.array([0.0, 0.0, 1.0])
    direction = direction if direction[2] >= 0 else -direction
    towards_left = np.degrees(np.arctan2(direction[0], direction[2]))
    towards_back = np.degrees(np.arctan2(direction[1], direction[2]))
    return float(towards_left), float(towards_back)


def affine_scales(transform: sitk.AffineTransform) -> tuple[float, float, float]:
    """Singular values of the linear part: a brain is not 40% larger or smaller than MNI."""
    values = np.linalg.svd(np.array(transform.GetMatrix()).reshape(3, 3), compute_uv=False)
    return (float(values[0]), float(values[1]), float(values[2]))
