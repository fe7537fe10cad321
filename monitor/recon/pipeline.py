"""The one reconstruction path: multi-echo magnitude/phase in, referenced susceptibility out.

mask -> total field (unwrap + echo fit) -> optional phase-quality mask -> ppm -> background
removal -> dipole inversion -> referencing. Every stage is timed into ``qc["seconds"]`` so a
slow site or a regression shows up in the results themselves, and every setting is stored in
``params`` so any result can be reproduced.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

from monitor.recon.background import remove_background
from monitor.recon.brain_box import brain_box, on_whole_grid
from monitor.recon.dipole import invert
from monitor.recon.field_map import estimate_total_field, hz_to_ppm
from monitor.recon.mask import (
    brain_mask,
    mask_volume_ml,
    phase_quality_mask,
    root_sum_of_squares,
)
from monitor.recon.reference import apply_reference, csf_mask_from_magnitude
from monitor.settings import ReconSettings
from monitor.types import Acquisition, QSMResult

Progress = Callable[[str], None]


class _StageTimer:
    """Times named stages and announces each one (no patient data: stage names only)."""

    def __init__(self, progress: Progress | None) -> None:
        self.seconds: dict[str, float] = {}
        self._progress = progress

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        if self._progress is not None:
            self._progress(stage)
        start = time.perf_counter()
        yield
        self.seconds[stage] = round(time.perf_counter() - start, 3)


def reconstruct(
    acq: Acquisition, settings: ReconSettings, progress: Progress | None = None
) -> QSMResult:
    """Reconstruct a susceptibility map (ppm) referenced as `settings.reference` says.

    Every stage after the mask works on the fixed-size block around the brain
    (`monitor.recon.brain_box`); the maps come back on the acquisition's whole grid, zero
    outside that block.
    """
    timer = _StageTimer(progress)
    with timer("mask"):
        combined = root_sum_of_squares(acq.magnitude)  # the mask's and the inversion's input
        mask = brain_mask(combined, acq.voxel_mm, settings)
    box = brain_box(mask, acq.voxel_mm)
    maps, qc = _reconstruct_in_box(
        acq.magnitude[box], combined[box], acq.phase_rad[box], mask[box], acq, settings, timer
    )
    qc["seconds"] = timer.seconds
    qc["box_voxels"] = [s.stop - s.start for s in box]
    whole = {name: on_whole_grid(volume, box, acq.shape) for name, volume in maps.items()}
    return QSMResult(
        chi_ppm=whole["chi_ppm"],
        mask=whole["mask"],
        local_field_ppm=whole["local_field_ppm"],
        total_field_ppm=whole["total_field_ppm"],
        affine_ras=np.asarray(acq.affine_ras),
        voxel_mm=acq.voxel_mm,
        reference=settings.reference,
        qc=qc,
        params=settings.model_dump(mode="json"),
        source_mask=whole["source_mask"],
    )


def _reconstruct_in_box(  # noqa: PLR0913 - the cropped arrays plus the acquisition's scalars
    magnitude: np.ndarray,
    combined_magnitude: np.ndarray,
    phase_rad: np.ndarray,
    mask: np.ndarray,
    acq: Acquisition,
    settings: ReconSettings,
    timer: _StageTimer,
) -> tuple[dict[str, np.ndarray], dict]:
    """Field, background removal, inversion and referencing on the cropped arrays."""
    voxel, b0_dir = acq.voxel_mm, acq.b0_dir_voxel
    with timer("field"):
        estimate = estimate_total_field(
            magnitude, phase_rad, acq.te_s, mask, voxel, settings.unwrap
        )
    qc: dict = {"mask_volume_ml": mask_volume_ml(mask, voxel)}
    if settings.phase_quality_mask:
        with timer("phase_quality"):
            mask = phase_quality_mask(mask, estimate.reliability)
        qc["phase_quality_mask_volume_ml"] = mask_volume_ml(mask, voxel)
    total_field_ppm = hz_to_ppm(estimate.field_hz, acq.b0_tesla)
    with timer("background"):
        background = remove_background(total_field_ppm, mask, voxel, b0_dir, settings)
    qc["local_field_mask_volume_ml"] = mask_volume_ml(background.mask, voxel)
    with timer("inversion"):
        chi_ppm = invert(
            background.local_field_ppm,
            background.mask,
            voxel,
            b0_dir,
            settings,
            magnitude=combined_magnitude,
        )
    with timer("reference"):
        whole_brain_chi, qc["whole_brain_offset_ppm"] = apply_reference(
            chi_ppm, background.mask, "whole_brain"
        )
        if settings.reference == "csf":
            csf = csf_mask_from_magnitude(magnitude, acq.te_s, background.mask, voxel)
            chi_ppm, qc["csf_offset_ppm"] = apply_reference(
                chi_ppm, background.mask, "csf", csf_mask=csf
            )
            qc["csf_volume_ml"] = mask_volume_ml(csf, voxel)
        else:
            chi_ppm = whole_brain_chi
    maps = {
        "chi_ppm": chi_ppm,
        "mask": background.mask,
        "local_field_ppm": background.local_field_ppm,
        "total_field_ppm": total_field_ppm,
        "source_mask": mask,
    }
    return maps, qc
