"""Deep grey matter segmentation: accuracy (Dice, ROI means) and time on simulated subjects.

Run: ``.venv/bin/python benchmarks/segment.py [--subjects 3] [--key-image out.png]``.

Each subject is the built-in head phantom (1x1x2 mm oblique whole-brain slab) with its own
random affine and smooth deformation. Segmentation runs twice, with and without the
susceptibility map for the local refinement. Reports per structure Dice against the true
labels, the largest difference of ROI means (ppb, both label maps on the true chi), and wall
and CPU seconds (target: <= 90 s wall on 2 cores, first call includes template preparation).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from monitor.measure import measure_structures
from monitor.phantom import PhantomConfig, simulate_phantom
from monitor.segment import LABEL_NAMES, STRUCTURES, segment_deep_grey
from monitor.segment.evaluation import dice_per_structure, to_structure_ids
from monitor.segment.keyimage import write_key_image
from monitor.settings import SegmentationSettings


def _max_mean_difference_ppb(phantom, labels, truth) -> float:
    acq = phantom.acquisition
    args = (LABEL_NAMES, phantom.brain_mask, acq.voxel_mm, "whole_brain")
    ours = measure_structures(phantom.chi_ppm, labels, *args).per_side
    true = measure_structures(phantom.chi_ppm, truth, *args).per_side
    return max(abs(ours[name].mean_ppb - true[name].mean_ppb) for name in true)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=3)
    parser.add_argument("--key-image", type=Path, default=None)
    args = parser.parse_args()
    settings = SegmentationSettings()
    names = [f"{s}_{side}" for s in STRUCTURES for side in ("left", "right")]
    print(
        "| subject | chi | wall s | cpu s | reportable | min Dice | max dMean ppb | "
        + " | ".join(names)
        + " |"
    )
    print("|" + "---|" * (7 + len(names)))
    for seed in range(args.subjects):
        phantom = simulate_phantom(PhantomConfig(warp_seed=100 + seed, n_echoes=2), seed)
        acq = phantom.acquisition
        truth = to_structure_ids(phantom.labels, phantom.label_names)
        for use_chi in (True, False):
            wall, cpu = time.perf_counter(), time.process_time()
            result = segment_deep_grey(
                acq.magnitude[..., 0],
                acq.affine_ras,
                phantom.brain_mask,
                settings,
                chi_ppm=phantom.chi_ppm if use_chi else None,
            )
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            dice = dice_per_structure(result.labels, truth)
            delta = _max_mean_difference_ppb(phantom, result.labels, truth)
            print(
                f"| {seed} | {use_chi} | {wall:.1f} | {cpu:.1f} | {result.reportable} | "
                f"{min(dice[n] for n in names):.3f} | {delta:.2f} | "
                + " | ".join(f"{dice[n]:.3f}" for n in names)
                + " |",
                flush=True,
            )
            if args.key_image and seed == 0 and use_chi:
                write_key_image(
                    args.key_image,
                    acq.magnitude[..., 0],
                    phantom.chi_ppm,
                    result.labels,
                    acq.voxel_mm,
                    title="phantom subject 0",
                )


if __name__ == "__main__":
    main()
