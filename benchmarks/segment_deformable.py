"""Which deformable stage: the product's B-spline against a dense displacement field.

Run: ``PYTHONPATH=.:tests .venv/bin/python benchmarks/segment_deformable.py --first 150
--count 8``.

Issue 11 asks for a deformable stage able to follow ventricular enlargement, chosen by
measurement (ANTs SyN or SimpleITK displacement fields). This runs the GRE-only atlas
segmentation (chi map given, as in the product) on held-out varied heads at the issue's pose
and size ranges twice: once as shipped (B-spline, 20 mm control spacing) and once with the
deformable stage replaced by a SimpleITK displacement-field registration (the demons-like
dense field of the SyN family, Gaussian-regularised, same metric, region, pyramid and start).
Prints per method: Dice min / median over all structures, the fraction of structure-sides
with Dice >= 0.85, the worst ROI-mean error against the true labels (ppb), and the median
segmentation time with its ratio to the B-spline run of the same head (same process, after
one untimed run that loads the template, so machine load cancels to first order).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the packages before tests/, whose folders share their names
sys.path.append(str(ROOT / "tests"))

from support.segment_scoring import SubjectScore, score  # noqa: E402
from support.varied_heads import ISSUE_RANGES, simulate_head  # noqa: E402

import monitor.segment.atlas_method as atlas_method  # noqa: E402
from monitor.segment import segment_deep_grey  # noqa: E402
from monitor.segment.registration import (  # noqa: E402
    RegistrationParameters,
    mutual_information_method,
    region_of_interest,
)
from monitor.segment.structures import REPORTED_NAMES  # noqa: E402
from monitor.settings import SegmentationSettings  # noqa: E402

DISPLACEMENT_ITERATIONS = 60
UPDATE_VARIANCE_MM2 = 1.0
TOTAL_VARIANCE_MM2 = 4.0
"""Gaussian regularisation of the update and of the whole field (as in SyN's defaults of
3 and 0 voxels at 2 mm, here in mm^2 on the 2 mm registration grid)."""


def refine_displacement(
    fixed: sitk.Image,
    region_mask: sitk.Image,
    moving: sitk.Image,
    affine: sitk.Transform,
    params: RegistrationParameters,
) -> sitk.CompositeTransform:
    """Dense displacement field over the same region, metric and pyramid as the B-spline."""
    roi, roi_mask = region_of_interest(fixed, region_mask)
    field = sitk.Image(roi.GetSize(), sitk.sitkVectorFloat64, 3)
    field.CopyInformation(roi)
    displacement = sitk.DisplacementFieldTransform(field)
    displacement.SetSmoothingGaussianOnUpdate(UPDATE_VARIANCE_MM2, TOTAL_VARIANCE_MM2)
    method = mutual_information_method(params, roi_mask)
    method.SetOptimizerAsGradientDescent(
        learningRate=1.0,
        numberOfIterations=DISPLACEMENT_ITERATIONS,
        estimateLearningRate=method.EachIteration,
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([2, 1])
    method.SetSmoothingSigmasPerLevel([2.0, 0.0])
    method.SetMovingInitialTransform(affine)
    method.SetInitialTransform(displacement, inPlace=True)
    method.Execute(roi, moving)
    return sitk.CompositeTransform([affine, displacement])


def linear_only(
    fixed: sitk.Image,
    region_mask: sitk.Image,
    moving: sitk.Image,
    affine: sitk.Transform,
    params: RegistrationParameters,
) -> sitk.Transform:
    """The control: no deformable stage, labels from the linear registration (and the border
    step on the chi contrast, which runs in every variant)."""
    return affine


def _segment(seed: int) -> SubjectScore:
    head = simulate_head(seed, ranges=ISSUE_RANGES)
    start = time.perf_counter()
    result = segment_deep_grey(
        head.magnitude, head.affine_ras, head.brain_mask, SegmentationSettings(), head.chi_ppm
    )
    return score(head, result, time.perf_counter() - start)


def _summary(label: str, scores: list[SubjectScore], ratios: list[float]) -> None:
    dice = np.array([[s.dice[n] for n in REPORTED_NAMES] for s in scores])
    errors = np.array([[abs(s.mean_error_ppb(n)) for n in REPORTED_NAMES] for s in scores])
    reported = np.array([[s.reported[n] for n in REPORTED_NAMES] for s in scores])
    print(
        f"| {label} | {dice.min():.2f} / {np.median(dice):.2f} | {(dice >= 0.85).mean():.0%} | "
        f"{reported.mean():.0%} | {np.nanmax(np.where(reported, errors, np.nan)):.1f} | "
        f"{np.median([s.seconds for s in scores]):.1f} ({np.median(ratios):.2f}x) |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first", type=int, default=150)
    parser.add_argument("--count", type=int, default=8)
    args = parser.parse_args()
    shipped = atlas_method.refine_bspline
    _segment(args.first)  # untimed: loads the template and atlas into their caches
    variants = {
        "B-spline 20 mm (shipped)": shipped,
        "displacement field": refine_displacement,
        "none (linear only)": linear_only,
    }
    scores: dict[str, list[SubjectScore]] = {name: [] for name in variants}
    for seed in range(args.first, args.first + args.count):
        for name, stage in variants.items():
            atlas_method.refine_bspline = stage
            scores[name].append(_segment(seed))
        print(
            f"head {seed}: Dice min "
            + ", ".join(f"{name} {min(s[-1].dice.values()):.2f}" for name, s in scores.items()),
            flush=True,
        )
    atlas_method.refine_bspline = shipped
    print(
        "\n| deformable stage | Dice min / median | Dice >= 0.85 | reported | "
        "worst ROI error ppb | median s (x B-spline) |"
    )
    print("|---|---|---|---|---|---|")
    reference = [s.seconds for s in scores["B-spline 20 mm (shipped)"]]
    for name, runs in scores.items():
        _summary(name, runs, [s.seconds / r for s, r in zip(runs, reference, strict=True)])


if __name__ == "__main__":
    main()
