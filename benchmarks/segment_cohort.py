"""Held-out cohort evaluation of the atlas segmentation on varied simulated heads.

Run: ``PYTHONPATH=.:tests .venv/bin/python benchmarks/segment_cohort.py --first 100 --count 24``.

For each seed: GRE-only, with the simulated T1, and (the first `--rescans` seeds) a rescan
(same head, new pose, slab and noise). Prints, per path and structure, the fraction of
subjects reported, with Dice >= 0.80 / 0.85 and with the ROI mean within 4 ppb of the
true-label mean, and for rescans the median ROI difference our labels add between visits.
Same generator, seeds and scoring as tests/monitor/segment/test_varied_cohort.py, which runs
a CI-sized part of it; the numbers in docs/segmentation.md come from this script.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the packages before tests/,
sys.path.append(str(Path(__file__).resolve().parents[1] / "tests"))  # whose folders share names

from support.segment_scoring import SubjectScore, score  # noqa: E402
from support.varied_heads import ISSUE_RANGES, STANDARD_RANGES, simulate_head  # noqa: E402

from monitor.segment import segment_deep_grey  # noqa: E402
from monitor.segment.structures import REPORTED_NAMES  # noqa: E402
from monitor.settings import SegmentationSettings  # noqa: E402

RANGES = {"issue": ISSUE_RANGES, "standard": STANDARD_RANGES}


def _run(seed: int, rescan: int, with_t1: bool, ranges: str) -> SubjectScore:
    head = simulate_head(seed, rescan, with_t1=with_t1, ranges=RANGES[ranges])
    start = time.perf_counter()
    result = segment_deep_grey(
        head.magnitude,
        head.affine_ras,
        head.brain_mask,
        SegmentationSettings(),
        head.chi_ppm,
        t1=(head.t1, head.t1_affine_ras) if with_t1 else None,
    )
    return score(head, result, time.perf_counter() - start)


def _table(label: str, scores: list[SubjectScore]) -> None:
    seconds = [s.seconds for s in scores]
    print(
        f"\n{label}: {len(scores)} subjects; segmentation median {np.median(seconds):.1f} s, "
        f"max {max(seconds):.1f} s"
    )
    print(
        "| structure | reported | Dice >= 0.80 | Dice >= 0.85 | mean within 4 ppb | "
        "Dice min / median |"
    )
    print("|---|---|---|---|---|---|")
    for name in REPORTED_NAMES:
        dice = np.array([s.dice[name] for s in scores])
        reported = np.array([s.reported[name] for s in scores])
        close = np.array([abs(s.mean_error_ppb(name)) <= 4.0 for s in scores]) & reported
        print(
            f"| {name} | {reported.mean():.0%} | {(dice >= 0.8).mean():.0%} | "
            f"{(dice >= 0.85).mean():.0%} | {close.mean():.0%} | "
            f"{dice.min():.2f} / {np.median(dice):.2f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first", type=int, default=100)
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--rescans", type=int, default=12)
    parser.add_argument(
        "--ranges",
        choices=sorted(RANGES),
        default="issue",
        help="head size and pose ranges (issue: +-15 %%, +-20 deg each axis)",
    )
    args = parser.parse_args()
    seeds = range(args.first, args.first + args.count)
    gre = [_run(seed, 0, False, args.ranges) for seed in seeds]
    _table("GRE only", gre)
    _table("with T1", [_run(seed, 0, True, args.ranges) for seed in seeds])
    differences = []
    for first in gre[: args.rescans]:
        second = _run(first.seed, 1, False, args.ranges)
        differences += [
            abs(second.mean_error_ppb(n) - first.mean_error_ppb(n)) for n in REPORTED_NAMES
        ]
    if differences:
        print(
            f"\nrescan: ROI difference added by segmentation, median "
            f"{np.median(differences):.2f} ppb, max {max(differences):.2f} ppb"
        )


if __name__ == "__main__":
    main()
