"""Write an `Acquisition` the way dcm2niix converts a Siemens multi-echo GRE series.

Tests and the benchmark feed simulated data through the same reader users feed scanner data
through, so the simulated files copy dcm2niix's layout: one 3-D file per echo and kind
(``<stem>_e<n>.nii.gz`` and ``<stem>_e<n>_ph.nii.gz``), a JSON sidecar per file, integer
magnitude, and Siemens 12-bit phase stored as 0..4095 with scale slope 2 and intercept -4096.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np

from monitor.nifti.reader import SIEMENS_PHASE_LEVELS
from monitor.types import Acquisition

MAGNITUDE_MAX = 4095
"""Siemens magnitude is 12-bit as well."""


def write_dcm2niix_style(
    acq: Acquisition, directory: Path, stem: str = "gre"
) -> tuple[list[Path], list[Path]]:
    """Write magnitude and phase files plus sidecars; return (magnitude paths, phase paths)."""
    directory.mkdir(parents=True, exist_ok=True)
    peak = float(acq.magnitude.max()) or 1.0
    magnitude_paths, phase_paths = [], []
    for echo, te_s in enumerate(acq.te_s):
        name = f"{stem}_e{echo + 1}"
        magnitude = np.round(acq.magnitude[..., echo] * (MAGNITUDE_MAX / peak)).astype(np.uint16)
        magnitude_paths.append(
            _write(directory / f"{name}.nii.gz", magnitude, acq, _sidecar(acq, te_s, echo, "M"))
        )
        phase_paths.append(
            _write(
                directory / f"{name}_ph.nii.gz",
                _siemens_phase_levels(acq.phase_rad[..., echo]),
                acq,
                _sidecar(acq, te_s, echo, "P"),
                slope_intercept=(2.0, -float(SIEMENS_PHASE_LEVELS)),
            )
        )
    return magnitude_paths, phase_paths


def _siemens_phase_levels(phase_rad: np.ndarray) -> np.ndarray:
    """Stored values 0..4095 such that 2*v - 4096 = phase * 4096 / pi (one turn, 12 bits)."""
    wrapped = np.angle(np.exp(1j * phase_rad))
    levels = np.round((wrapped + math.pi) * (SIEMENS_PHASE_LEVELS / (2 * math.pi)))
    return np.mod(levels, SIEMENS_PHASE_LEVELS).astype(np.uint16)


def _sidecar(acq: Acquisition, te_s: float, echo: int, kind: str) -> dict[str, object]:
    return {
        "Modality": "MR",
        "MagneticFieldStrength": acq.b0_tesla,
        "Manufacturer": "Siemens",
        "ImageType": ["ORIGINAL", "PRIMARY", kind, "ND"],
        "EchoNumber": echo + 1,
        "EchoTime": te_s,
        "ConversionSoftware": "qsm-monitor dcm2niix-style export",
    }


def _write(
    path: Path,
    data: np.ndarray,
    acq: Acquisition,
    sidecar: dict[str, object],
    slope_intercept: tuple[float, float] | None = None,
) -> Path:
    image = nib.Nifti1Image(data, acq.affine_ras)
    image.header.set_zooms(acq.voxel_mm)
    image.header.set_xyzt_units("mm", "sec")
    image.set_qform(acq.affine_ras, code=1)
    image.set_sform(acq.affine_ras, code=1)
    if slope_intercept is not None:
        image.header.set_slope_inter(*slope_intercept)
    nib.save(image, path)
    path.with_name(path.name.removesuffix(".nii.gz") + ".json").write_text(
        json.dumps(sidecar, indent=2), encoding="utf-8"
    )
    return path
