"""Vendor phase scalings: from stored pixel values to radians, and back (for synthetic series).

The decoding rule looks at the *representable* range of a phase image (what its bit depth and
rescale could express), not at the values actually present, because a small phase range in one
slice says nothing about the unit:

1. representable span ~= 2*pi          -> values are radians (Philips rad, Enhanced MR);
2. representable span ~= 2000*pi       -> values are milliradians (Philips mrad);
3. GE without a matching rescale       -> signed milliradians, GE's convention (+-3142);
4. anything else                       -> an integer code of the full circle: the representable
   range maps linearly onto [-pi, pi). Siemens stores 0..4095 with slope 2 / intercept -4096,
   so value * pi / 4096.

The phase sign is kept as stored by every vendor; `monitor.types.Acquisition` documents the sign
convention and the reconstruction checks it on the phantom, not here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dicom_node.errors import NodeError

SIEMENS_PHASE_BITS = 12
SIEMENS_RESCALE_SLOPE = 2.0
SIEMENS_RESCALE_INTERCEPT = -4096.0
_SPAN_TOLERANCE = 0.02


class PhaseScalingError(NodeError, ValueError):
    """Stored phase values cannot be mapped to radians with any known convention."""


@dataclass(frozen=True)
class StoredRange:
    """What a stored pixel could hold, after the Modality rescale (slope, intercept)."""

    bits_stored: int
    signed: bool
    slope: float
    intercept: float

    def limits(self) -> tuple[float, float]:
        low, high = (
            (-(2 ** (self.bits_stored - 1)), 2 ** (self.bits_stored - 1) - 1)
            if self.signed
            else (0, 2**self.bits_stored - 1)
        )
        ends = sorted((low * self.slope + self.intercept, high * self.slope + self.intercept))
        return ends[0], ends[1]

    @property
    def step(self) -> float:
        return abs(self.slope)


def phase_to_radians(values: np.ndarray, stored: StoredRange, manufacturer: str) -> np.ndarray:
    """Rescaled phase values -> radians in [-pi, pi], by the rules in the module docstring."""
    low, high = stored.limits()
    span = high - low + stored.step
    if _close(span, 2 * np.pi) or _close(high - low, 2 * np.pi):
        return values.astype(np.float64)
    if _close(span, 2000 * np.pi) or _close(high - low, 2000 * np.pi):
        return values.astype(np.float64) / 1000.0
    if "GE" in manufacturer.upper():
        if np.max(np.abs(values), initial=0.0) > 1000 * np.pi * (1 + _SPAN_TOLERANCE):
            raise PhaseScalingError("GE phase values exceed +-pi in milliradians")
        return values.astype(np.float64) / 1000.0
    if span <= 2 * np.pi * (1 + _SPAN_TOLERANCE):
        raise PhaseScalingError(f"phase range {span:.3g} is too small for an integer phase code")
    return (values.astype(np.float64) - low) * (2 * np.pi / span) - np.pi


def siemens_stored_phase(phase_rad: np.ndarray) -> np.ndarray:
    """Radians -> Siemens 12-bit stored values (0..4095) for slope 2 / intercept -4096."""
    levels = 2**SIEMENS_PHASE_BITS
    code = np.round(_wrap(phase_rad) / (2 * np.pi) * levels + levels / 2)
    return (code.astype(np.int64) % levels).astype(np.uint16)


def full_circle_code(phase_rad: np.ndarray, bits: int) -> np.ndarray:
    """Radians -> unsigned codes 0..2**bits-1 spanning [-pi, pi] inclusive (Philips style)."""
    top = 2**bits - 1
    return np.round((_wrap(phase_rad) + np.pi) / (2 * np.pi) * top).astype(np.uint16)


def full_circle_rescale(bits: int, unit_scale: float) -> tuple[float, float]:
    """(slope, intercept) that map `full_circle_code` back to [-pi, pi] * unit_scale."""
    return 2 * np.pi * unit_scale / (2**bits - 1), -np.pi * unit_scale


def _wrap(phase_rad: np.ndarray) -> np.ndarray:
    return np.angle(np.exp(1j * np.asarray(phase_rad, dtype=np.float64)))


def _close(value: float, target: float) -> bool:
    return abs(value - target) <= _SPAN_TOLERANCE * target
