"""End to end from DICOM on heads that are not the atlas (slow): issue 11's evidence.

Two held-out varied heads (pose, size, warp, atrophy, oblique slab; seeds never used in
development), one GRE-only and one whose study also holds its same-session MPRAGE, are
written as Siemens DICOM and processed by `qsm-monitor process`'s code path. Their phase comes
from the whole head (brain, air, bone, brain beyond the slab) through the independent
qsm_forward model. Head 300 misses two targets since that background was added; those two
checks are strict expected failures (`BACKGROUND_MISS`) until the reconstruction is fixed.
Judged per structure and side against the true map over the true labels: structures
reported (see the first test), the T1 path taken when the T1 is there, and over both heads
slope >= 0.9, R^2 >= 0.98, worst error <= 8 ppb after each visit's reference offset.
benchmarks/segment_e2e.py runs the same on more heads.
"""

from __future__ import annotations

import numpy as np
import pytest
from support.varied_e2e import EndToEnd, process_varied_head
from support.varied_heads import simulate_head

from monitor.segment.structures import REPORTED_NAMES

pytestmark = pytest.mark.slow

HEADS = ((300, False), (301, True))
BACKGROUND_MISS = pytest.mark.xfail(
    strict=True,
    reason=(
        "known, issue 11 open: since the GRE phase carries air, bone and the brain beyond the "
        "slab (2026-12-06), head 300's right thalamus reads 9.9 ppb high (label 1.23x true); "
        "the map alone over the true labels is 11.0 ppb off: LBV's boundary loss "
        "(docs/segmentation.md)"
    ),
)
"""Head 300 (GRE-only) misses two targets end to end; strict, so a fix makes this fail."""
PER_HEAD = [
    pytest.param(0, marks=BACKGROUND_MISS, id="300-gre"),
    pytest.param(1, id="301-t1"),
]


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> list[EndToEnd]:
    return [
        process_varied_head(
            simulate_head(seed, with_t1=with_t1), tmp_path_factory.mktemp(f"varied-{seed}")
        )
        for seed, with_t1 in HEADS
    ]


def test_structures_are_reported_and_the_t1_is_used_when_sent(results):
    """All 8 structure-sides on the T1 head. On the GRE-only head the map's own error can
    mislead the chi-driven deformable stage: with the earlier inversion (whole-grid data
    term, 30 TV iterations) its right thalamus came out 9.2 ml against 7.45 ml true and QC
    withheld it, saying why (now all 8 are reported); one withheld side, with its reason, is
    allowed, not more."""
    for result, (_, with_t1) in zip(results, HEADS, strict=True):
        assert result.registration_path == ("t1" if with_t1 else "gre")
        withheld = [
            n for n, v in zip(REPORTED_NAMES, result.measured_ppb, strict=True) if np.isnan(v)
        ]
        assert len(withheld) <= (0 if with_t1 else 1), (result.seed, result.segmentation_reason)
        assert all(f"{name} withheld:" in result.segmentation_reason for name in withheld)


def test_reported_values_follow_the_truth(results):
    true = np.concatenate([r.true_ppb for r in results])
    measured = np.concatenate([r.true_ppb + r.offset_removed_errors() for r in results])
    reported = np.isfinite(measured)
    slope, intercept = np.polyfit(true[reported], measured[reported], 1)
    residual = measured[reported] - (slope * true[reported] + intercept)
    r_squared = 1.0 - residual.var() / measured[reported].var()
    assert slope >= 0.9, (slope, measured, true)
    assert r_squared >= 0.98, (r_squared, measured, true)


@pytest.mark.parametrize("head", PER_HEAD)
def test_worst_structure_within_8_ppb_after_the_reference_offset(results, head):
    result = results[head]
    errors = result.offset_removed_errors()
    worst = dict(zip(REPORTED_NAMES, np.round(errors, 1), strict=True))
    assert np.nanmax(np.abs(errors)) <= 8.0, (result.seed, worst)


@pytest.mark.parametrize("head", PER_HEAD)
def test_label_volumes_follow_the_true_structures(results, head):
    """Every reported structure's label within 15 % of its true volume. Through the map-driven
    deformable stage a thalamus once came out 8.3 ml beside a 14.1 ml one (true 13.8 / 13.6 ml,
    head 304 at the issue's ranges): the thalamus is now half linear prior
    (docs/segmentation.md, "Labels")."""
    result = results[head]
    ratio = result.measured_ml / result.true_ml
    named = dict(zip(REPORTED_NAMES, np.round(ratio, 2), strict=True))
    reported = np.isfinite(ratio)
    assert np.all(np.abs(ratio[reported] - 1.0) <= 0.15), (result.seed, named)
