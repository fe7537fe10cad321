"""Reliable change on simulated scan-rescan noise: false alarms and detection (issue 5).

Two scans of a stable person differ by noise with SD sqrt(2) * SD_retest, so the limit
1.96 * sqrt(2) * SD_retest lets through 5 % of stable pairs by construction. A decline of
3 SD *of that difference* (3 * sqrt(2) * SD_retest, the reliable-change-index scale of
Jacobson & Truax) is detected in about 85 % of pairs.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
from scipy.stats import norm

from monitor.settings import RiskSettings
from monitor.tracking.change import VisitValue, compute_change

RETEST_SD_PPB = RiskSettings().retest_sd_ppb["thalamus"]
N_PAIRS = 20000
BASE = datetime(2022, 5, 1)


def pair_flags(true_change_ppb: float, seed: int) -> np.ndarray:
    """Reliable-change flags of N_PAIRS two-visit pairs one year apart, retest noise only."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(0.0, 7.0, N_PAIRS)  # people differ; their noise does not depend on it
    first = truth + rng.normal(0.0, RETEST_SD_PPB, N_PAIRS)
    second = truth + true_change_ppb + rng.normal(0.0, RETEST_SD_PPB, N_PAIRS)
    flags = []
    for before, after in zip(first, second, strict=True):
        result = compute_change(
            [VisitValue("v1", BASE, float(before))],
            VisitValue("v2", BASE + timedelta(days=365), float(after)),
            RETEST_SD_PPB,
        )
        flags.append(result.reliable_change and math.copysign(1, result.change_ppb))
    return np.array(flags, dtype=float)


def test_stable_pairs_raise_few_false_alarms() -> None:
    nominal = 2.0 * (1.0 - float(norm.cdf(1.96)))  # two-sided tail beyond 1.96 difference SDs
    assert nominal <= 0.05
    flags = pair_flags(0.0, seed=11)
    any_direction = float(np.mean(flags != 0))
    falling = float(np.mean(flags < 0))
    print(f"false alarms: any direction {any_direction:.4f}, falling only {falling:.4f}")
    # the measured rates agree with the nominal ones within Monte-Carlo error (3 SE)
    assert any_direction <= nominal + 3 * math.sqrt(nominal * (1 - nominal) / N_PAIRS)
    half = nominal / 2
    assert falling <= half + 3 * math.sqrt(half * (1 - half) / N_PAIRS)


def test_decline_of_three_difference_sds_is_detected() -> None:
    decline_ppb = -3.0 * math.sqrt(2.0) * RETEST_SD_PPB
    flags = pair_flags(decline_ppb, seed=12)
    detected = float(np.mean(flags < 0))
    print(f"detection of a {decline_ppb:.1f} ppb decline: {detected:.3f}")
    assert detected >= 0.80
