"""Core value types passed between pipeline stages.

Units live in field names (``te_s``, ``voxel_mm``, ``chi_ppm``) so that a value cannot cross a
stage boundary with its unit forgotten. Arrays are numpy on the way in and out; JAX arrays stay
inside `monitor.recon`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from monitor.errors import MonitorError

GYROMAGNETIC_HZ_PER_T = 42.577478518e6
"""Proton gyromagnetic ratio / 2pi, in Hz per tesla (CODATA 2018)."""
MIN_ECHOES = 2
"""Echoes an input needs: with one, the echo-independent phase offset (coil, transmit) cannot
be told apart from the field, so the map would carry it as susceptibility."""


class InvalidAcquisitionError(MonitorError, ValueError):
    """An input cannot become a valid `Acquisition`; the message is one plain reason."""


@dataclass(frozen=True)
class Acquisition:
    """One multi-echo gradient-echo acquisition, ready for reconstruction.

    Arrays have shape (x, y, z, echo). Phase follows one convention everywhere: it grows with
    echo time as ``2*pi*f*TE`` where ``f`` is the local frequency offset in Hz, so a
    paramagnetic (positive chi) sphere gives a positive field inside. Vendor sign conventions
    are resolved before an `Acquisition` is built.
    """

    magnitude: np.ndarray
    phase_rad: np.ndarray
    te_s: tuple[float, ...]
    voxel_mm: tuple[float, float, float]
    b0_tesla: float
    b0_dir_voxel: tuple[float, float, float]
    """Unit vector of the main field in voxel axes (not patient axes): oblique slabs differ."""
    affine_ras: np.ndarray
    """4x4 voxel-index to RAS+ millimetre affine (NIfTI convention)."""
    label: str = ""
    """Non-identifying label for logs and progress (never a patient name or ID)."""

    def __post_init__(self) -> None:
        validate_acquisition(self)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.magnitude.shape[:3])  # type: ignore[return-value]

    @property
    def n_echoes(self) -> int:
        return int(self.magnitude.shape[3])


@dataclass(frozen=True)
class T1Image:
    """A same-session 3-D T1-weighted image (e.g. MPRAGE) on its own grid.

    Segmentation registers it to the template (the more robust registration: its contrast is
    the template's) and rigidly to the GRE acquisition of the same session.
    """

    intensity: np.ndarray
    """(x, y, z) rescaled stored values, arbitrary units."""
    affine_ras: np.ndarray
    """Voxel index -> RAS+ mm, in the same frame of reference as the GRE acquisition."""
    label: str = ""
    """Where it came from (vendor and series number), never patient data."""


def validate_acquisition(acq: Acquisition) -> None:
    """Reject inconsistent inputs early with one plain reason, not deep in a JAX trace."""
    if acq.magnitude.ndim != 4 or acq.phase_rad.ndim != 4:
        raise InvalidAcquisitionError("magnitude and phase must be 4-D (x, y, z, echo)")
    if acq.magnitude.shape != acq.phase_rad.shape:
        raise InvalidAcquisitionError(
            f"magnitude shape {acq.magnitude.shape} differs from phase shape {acq.phase_rad.shape}"
        )
    if len(acq.te_s) != acq.magnitude.shape[3]:
        raise InvalidAcquisitionError(
            f"{len(acq.te_s)} echo times given for {acq.magnitude.shape[3]} echoes"
        )
    if len(acq.te_s) < 1 or any(t <= 0 for t in acq.te_s):
        raise InvalidAcquisitionError("echo times must be positive")
    if any(b <= a for a, b in zip(acq.te_s, acq.te_s[1:], strict=False)):
        raise InvalidAcquisitionError(f"echo times are not increasing: {acq.te_s}")
    if len(acq.voxel_mm) != 3 or any(v <= 0 for v in acq.voxel_mm):
        raise InvalidAcquisitionError(f"voxel size must be three positive values: {acq.voxel_mm}")
    if not 0.1 <= acq.b0_tesla <= 20:
        raise InvalidAcquisitionError(f"implausible field strength {acq.b0_tesla} T")
    norm = float(np.linalg.norm(acq.b0_dir_voxel))
    if abs(norm - 1.0) > 1e-3:
        raise InvalidAcquisitionError(f"B0 direction must be a unit vector, got norm {norm:.4f}")
    if np.asarray(acq.affine_ras).shape != (4, 4):
        raise InvalidAcquisitionError("affine must be 4x4")


def b0_direction_in_voxel_axes(affine: np.ndarray) -> tuple[float, float, float]:
    """Main-field direction in voxel axes from a voxel-to-patient affine.

    B0 lies along the scanner/patient superior-inferior axis (z in both RAS and LPS) for the
    standard head-first/feet-first supine and prone positions, so the direction in voxel axes is
    the inverse rotation applied to z. The sign is irrelevant to the dipole kernel.
    """
    linear = np.asarray(affine, dtype=float)[:3, :3]
    rotation = linear / np.linalg.norm(linear, axis=0, keepdims=True)
    direction = np.linalg.solve(rotation, np.array([0.0, 0.0, 1.0]))
    direction = direction / np.linalg.norm(direction)
    return (float(direction[0]), float(direction[1]), float(direction[2]))


@dataclass(frozen=True)
class QSMResult:
    """Output of the reconstruction; `chi_ppm` is referenced as named in `reference`."""

    chi_ppm: np.ndarray
    mask: np.ndarray
    local_field_ppm: np.ndarray
    total_field_ppm: np.ndarray
    affine_ras: np.ndarray
    voxel_mm: tuple[float, float, float]
    reference: str
    """Which reference region has mean zero in `chi_ppm`: "whole_brain" or "csf"."""
    qc: Mapping[str, Any] = field(default_factory=dict)
    """Quality figures: mask volume (ml), per-stage seconds, residuals, warnings."""
    params: Mapping[str, Any] = field(default_factory=dict)
    """Every parameter the reconstruction used, so a result can be reproduced."""
    source_mask: np.ndarray | None = None
    """The brain mask background removal was given (before its erosion): where the local
    field's sources are taken to be (`monitor.recon.geometry_correction` models the same)."""
