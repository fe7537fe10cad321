"""Accuracy of every unwrap x background x inversion combination on the realistic phantom.

Run: ``.venv/bin/python benchmarks/recon_methods.py [--seed 0] [--warp-seed N] [--fast]``.

Simulates the oblique 1x1x2 mm head phantom (independent qsm_forward field), reconstructs it
with each combination from raw multi-echo phase, and prints a markdown table: deep grey matter
ROI slope and R^2 (measured vs true, whole-brain referenced), worst ROI error (ppb), challenge
NRMSE (%) of chi inside the reconstruction mask within the true brain, and wall time (which
includes JIT compilation the first time a method meets this grid). A second table gives each
dipole inversion alone, from the true local field in the true brain mask (the specification's
NRMSE test). The defaults in `ReconSettings` are chosen from these tables on the template
subject and a warped one (docs/reconstruction.md).
"""

from __future__ import annotations

import argparse
import itertools
import time
from dataclasses import replace
from typing import get_args

import numpy as np
from qsm_ci.qsm_eval import nrmse_challenge

from monitor.phantom import FAST_CONFIG, Phantom, PhantomConfig, simulate_phantom
from monitor.phantom.evaluate import roi_agreement
from monitor.recon.dipole import invert
from monitor.recon.pipeline import reconstruct
from monitor.settings import ReconSettings


def _choices(field: str) -> tuple[str, ...]:
    return get_args(ReconSettings.model_fields[field].annotation)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="noise and phase-offset seed")
    parser.add_argument("--warp-seed", type=int, default=None, help="warped subject (anatomy)")
    parser.add_argument("--fast", action="store_true", help="2 mm phantom (quick look only)")
    args = parser.parse_args()
    config = replace(FAST_CONFIG if args.fast else PhantomConfig(), warp_seed=args.warp_seed)
    phantom = simulate_phantom(config, rng=args.seed)
    print(
        "| unwrap | background | inversion | ROI slope | ROI R^2 | max ROI error (ppb) "
        "| NRMSE (%) | seconds |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for unwrap, background, inversion in itertools.product(
        _choices("unwrap"), _choices("background"), _choices("inversion")
    ):
        settings = ReconSettings(unwrap=unwrap, background=background, inversion=inversion)
        start = time.perf_counter()
        result = reconstruct(phantom.acquisition, settings)
        seconds = time.perf_counter() - start
        agreement = roi_agreement(phantom, result.chi_ppm, result.mask)
        # Within the true brain: the reconstruction mask may include a rim of skull.
        nrmse, _ = nrmse_challenge(
            result.chi_ppm, phantom.chi_ppm, result.mask & phantom.brain_mask
        )
        print(
            f"| {unwrap} | {background} | {inversion} | {agreement.slope:.3f} "
            f"| {agreement.r_squared:.4f} | {agreement.max_error_ppb:.1f} | {nrmse:.1f} "
            f"| {seconds:.1f} |",
            flush=True,
        )
    _inversion_alone(phantom)


def _inversion_alone(phantom: Phantom) -> None:
    """Each inversion from the true local field: isolates it from mask and background errors."""
    acq = phantom.acquisition
    magnitude = np.sqrt(np.sum(acq.magnitude**2, axis=-1))
    print("\n| inversion alone | ROI slope | max ROI error (ppb) | NRMSE (%) | seconds |")
    print("|---|---|---|---|---|")
    for inversion in _choices("inversion"):
        start = time.perf_counter()
        chi = invert(
            phantom.local_field_ppm,
            phantom.brain_mask,
            acq.voxel_mm,
            acq.b0_dir_voxel,
            ReconSettings(inversion=inversion),
            magnitude=magnitude,
        )
        seconds = time.perf_counter() - start
        agreement = roi_agreement(phantom, chi, phantom.brain_mask)
        nrmse, _ = nrmse_challenge(chi, phantom.chi_ppm, phantom.brain_mask)
        print(
            f"| {inversion} | {agreement.slope:.3f} | {agreement.max_error_ppb:.1f} "
            f"| {nrmse:.1f} | {seconds:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
