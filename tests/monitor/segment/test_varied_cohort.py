"""Atlas segmentation on simulated heads unlike the atlas (tests/support/varied_heads.py).

Held-out subjects: the registration was developed on seeds 1-8; these seeds were not used
for any choice. Heads vary over the issue's ranges (`ISSUE_RANGES`: size +-15 %, +-20 degrees
about each axis, +-20 mm; besides warp, atrophy and slab). Inputs are the GRE magnitude, the
brain mask and a simulated measured chi map
(truth + noise + residual background: segmentation-level evaluation, no reconstruction).
Issue targets (docs/segmentation.md, "Evidence"): GRE-only, every structure reported on
>= 95 % of subjects, Dice >= 0.80 on >= 90 %, ROI mean within 4 ppb of the true-label mean on
>= 95 %; with a same-session T1, Dice >= 0.85 on >= 95 %.

CI time: one segmentation costs ~15-20 s on 2 quiet cores (plus ~5 s to simulate), so CI
runs 8 GRE-only subjects, 2 with T1 and 1 rescan (~4.5 min estimated unloaded; 14 min
measured at load 8); with so few subjects the
percentages mean "all of them". `benchmarks/segment_cohort.py` runs the full held-out cohort
(same generator, seeds and scoring) for the numbers in the docs.
"""

import time

import numpy as np
import pytest
from support.segment_scoring import SubjectScore, score
from support.varied_heads import ISSUE_RANGES, simulate_head

from monitor.segment import segment_deep_grey
from monitor.segment.structures import REPORTED_NAMES
from monitor.settings import SegmentationSettings

pytestmark = pytest.mark.slow

GRE_COHORT = tuple(range(100, 108))
T1_COHORT = (100, 101)
RESCAN_COHORT = (100,)
SETTINGS = SegmentationSettings()


def _segment(seed: int, rescan: int = 0, with_t1: bool = False) -> SubjectScore:
    head = simulate_head(seed, rescan, with_t1=with_t1, ranges=ISSUE_RANGES)
    t1 = (head.t1, head.t1_affine_ras) if with_t1 else None
    start, cpu = time.perf_counter(), time.process_time()
    result = segment_deep_grey(
        head.magnitude, head.affine_ras, head.brain_mask, SETTINGS, head.chi_ppm, t1=t1
    )
    return score(head, result, time.perf_counter() - start, time.process_time() - cpu)


def _fraction(scores: list[SubjectScore], passes) -> dict[str, float]:
    return {name: float(np.mean([passes(s, name) for s in scores])) for name in REPORTED_NAMES}


@pytest.fixture(scope="module")
def gre_scores() -> list[SubjectScore]:
    return [_segment(seed) for seed in GRE_COHORT]


@pytest.fixture(scope="module")
def t1_scores() -> list[SubjectScore]:
    return [_segment(seed, with_t1=True) for seed in T1_COHORT]


def test_gre_only_reports_every_structure_on_95_percent(gre_scores):
    reported = _fraction(gre_scores, lambda s, name: s.reported[name])
    assert {s.path for s in gre_scores} == {"gre"}
    assert min(reported.values()) >= 0.95, reported


def test_gre_only_dice_at_least_080_on_90_percent(gre_scores):
    good = _fraction(gre_scores, lambda s, name: s.dice[name] >= 0.80)
    assert min(good.values()) >= 0.90, good


def test_gre_only_roi_means_within_4_ppb_on_95_percent(gre_scores):
    close = _fraction(
        gre_scores, lambda s, name: s.reported[name] and abs(s.mean_error_ppb(name)) <= 4.0
    )
    assert min(close.values()) >= 0.95, close


def test_gre_only_segmentation_time(gre_scores):
    """Target: 60 s wall on 2 cores, i.e. 120 s of CPU. CPU time is asserted because wall
    time on a shared runner measures the other jobs too (here, with four heavy processes on
    2 cores, wall times of 65-220 s were seen for 15-20 s unloaded runs)."""
    assert max(s.cpu_seconds for s in gre_scores) <= 120.0


def test_with_t1_dice_at_least_085_on_95_percent(t1_scores):
    """The T1 path (issue target: Dice >= 0.85 per structure on >= 95 % of subjects)."""
    assert {s.path for s in t1_scores} == {"t1"}
    good = _fraction(t1_scores, lambda s, name: s.reported[name] and s.dice[name] >= 0.85)
    assert min(good.values()) >= 0.95, good


def test_scan_rescan_roi_difference_from_segmentation(gre_scores):
    """Same head, new pose, slab and noise. The simulated maps of the two visits differ by
    their noise and residual background, which no segmentation can remove, so the error our
    labels add is compared: (ours - true labels) in visit 2 minus the same in visit 1."""
    differences = []
    for seed in RESCAN_COHORT:
        first = next(s for s in gre_scores if s.seed == seed)
        second = _segment(seed, rescan=1)
        differences += [
            abs(second.mean_error_ppb(name) - first.mean_error_ppb(name)) for name in REPORTED_NAMES
        ]
    assert float(np.median(differences)) <= 1.5, differences


def test_recorded_b0_tilt_follows_the_head_pose(gre_scores):
    """QC's B0 tilt (the map's left-right agreement depends on it) within 3 degrees of the
    pose each head was simulated in (+-20 degrees about every axis)."""
    for score_ in gre_scores:
        recorded, true = np.array(score_.b0_tilt_deg), np.array(score_.true_b0_tilt_deg)
        assert np.all(np.abs(recorded - true) <= 3.0), (score_.seed, recorded, true)


def test_registration_failure_is_detected_and_stated():
    """A head turned 90 degrees (far outside any real pose, e.g. a wrong orientation in the
    header) cannot be registered: nothing is reported and the reason says so."""
    head = simulate_head(GRE_COHORT[0], ranges=ISSUE_RANGES)
    turn = np.eye(4)
    turn[1:3, 1:3] = [[0.0, -1.0], [1.0, 0.0]]
    result = segment_deep_grey(
        head.magnitude, turn @ head.affine_ras, head.brain_mask, SETTINGS, head.chi_ppm
    )
    assert not result.reportable
    assert result.reason.startswith("registration failed"), result.reason
