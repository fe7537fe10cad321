"""Score a segmentation of a varied head against its truth: what the cohort tests assert on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitor.measure import measure_structures
from monitor.segment import LABEL_NAMES, Segmentation
from monitor.segment.evaluation import dice_per_structure
from monitor.segment.structures import REPORTED_NAMES
from support.varied_heads import VariedHead, true_b0_tilt_deg

__all__ = ["SubjectScore", "score"]


@dataclass(frozen=True)
class SubjectScore:
    """Per structure and side: reported?, Dice, ROI means (ppb) on our and on the true labels."""

    seed: int
    path: str
    reported: dict[str, bool]
    dice: dict[str, float]
    mean_ppb: dict[str, float]
    true_mean_ppb: dict[str, float]
    seconds: float
    cpu_seconds: float
    """Process CPU time (all threads): on 2 free cores, wall time is about half of it."""
    b0_tilt_deg: tuple[float, float]
    """QC's B0 tilt (towards the head's left, towards its back), NaN when not recorded."""
    true_b0_tilt_deg: tuple[float, float]
    """The same from the head's pose."""

    def mean_error_ppb(self, name: str) -> float:
        return self.mean_ppb[name] - self.true_mean_ppb[name]


def score(
    head: VariedHead, result: Segmentation, seconds: float, cpu_seconds: float = float("nan")
) -> SubjectScore:
    """Both label maps are measured on the same (noisy, simulated-measured) chi map with the
    whole-brain reference and the default in-plane erosion, as reports would be."""
    voxel_mm = tuple(float(v) for v in np.linalg.norm(head.affine_ras[:3, :3], axis=0))
    args = (head.brain_mask, voxel_mm, "whole_brain")
    ours = measure_structures(head.chi_ppm, result.labels, LABEL_NAMES, *args).per_side
    true = measure_structures(head.chi_ppm, head.labels, LABEL_NAMES, *args).per_side
    dice = dice_per_structure(result.labels, head.labels)
    tilt = result.qc.get("b0_tilt_deg") or {}
    reported = {
        name: result.reportable and name in result.label_names.values() for name in REPORTED_NAMES
    }
    return SubjectScore(
        seed=head.seed,
        path=str(result.qc.get("registration_path", "")),
        reported=reported,
        dice={name: dice[name] for name in REPORTED_NAMES},
        mean_ppb={name: ours[name].mean_ppb for name in REPORTED_NAMES},
        true_mean_ppb={name: true[name].mean_ppb for name in REPORTED_NAMES},
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        b0_tilt_deg=(
            float(tilt.get("towards_left", np.nan)),
            float(tilt.get("towards_back", np.nan)),
        ),
        true_b0_tilt_deg=true_b0_tilt_deg(head),
    )
