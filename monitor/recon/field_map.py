"""Multi-echo phase to one total field map in Hz.

Phase of echo k is ``phi0 + 2*pi*f*TE_k`` (wrapped), where ``phi0`` is an echo-independent
offset (receive-coil phase, transmit phase) that is not field and must be removed before the
echoes can be combined.

* ``method="romeo"``: the echo 1-2 phase difference is free of ``phi0``; it is unwrapped
  spatially by quality-guided region growing, which also gives ``phi0`` (MCPC-3D-S, Eckstein
  et al. MRM 2018, smoothed because the offset varies slowly while noise does not). Each
  offset-free echo is then unwrapped in time against the prediction of the echoes before it,
  so every echo stays exactly congruent with its data.
* ``method="laplacian"``: the echo-to-echo phase steps are Laplacian-unwrapped and summed,
  and ``phi0`` is fitted as an intercept. Fast and robust, but harmonic parts of the field
  (and its mean) are not preserved.

The echoes are combined by a weighted least-squares fit of phase against TE with weights
magnitude^2 (phase noise variance ~ 1/SNR^2), the SNR-optimal combination.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from monitor.recon import fourier
from monitor.recon.resample import blocks, doubled
from monitor.recon.unwrap import (
    edge_quality,
    laplacian_unwrap,
    romeo_unwrap,
    temporal_unwrap,
    voxel_quality,
    wrap,
)
from monitor.types import GYROMAGNETIC_HZ_PER_T

METHODS = ("laplacian", "romeo")
OFFSET_SMOOTHING_MM = 4.0
"""Radius of the spherical mean used on the phase offset: wider than noise, narrower than
the coil sensitivity variation."""
OFFSET_REFINEMENTS = 3
"""Passes refining the smoothed offset; each shrinks its smoothing bias several-fold."""
FIT_WEIGHT_FLOOR = 1e-20
"""Added to the magnitude^2 weights so a voxel with no signal divides by a non-zero total."""
RESIDUAL_SCALE_RAD = np.pi / 4
"""Fit residual (rms, rad) at which temporal consistency has dropped to 1/e."""


@dataclass(frozen=True)
class FieldEstimate:
    """Total field and how far to trust it, all (x, y, z)."""

    field_hz: np.ndarray
    reliability: np.ndarray
    """0..1: spatial edge quality times echo-to-echo consistency; 0 outside the mask."""
    phase_offset_rad: np.ndarray
    """Echo-independent phase removed before combining echoes."""


def hz_to_ppm(field_hz: np.ndarray, b0_tesla: float) -> np.ndarray:
    """Frequency offset in Hz to field perturbation in ppm of B0."""
    return field_hz / (GYROMAGNETIC_HZ_PER_T * b0_tesla) * 1e6


def estimate_total_field(
    magnitude: np.ndarray,
    phase_rad: np.ndarray,
    te_s: tuple[float, ...],
    mask: np.ndarray,
    voxel_mm: tuple[float, float, float],
    method: str,
) -> FieldEstimate:
    """Unwrap and combine (x, y, z, echo) magnitude and phase into one field map in Hz."""
    _validate(magnitude, phase_rad, te_s, mask, method)
    magnitude = np.asarray(magnitude, dtype=np.float32)
    phase_rad = np.asarray(phase_rad, dtype=np.float32)
    mask = np.asarray(mask, dtype=bool)
    te = np.asarray(te_s, dtype=np.float64)
    voxel = tuple(float(v) for v in voxel_mm)
    # One device copy of each 4-D input for every step below: echoes sliced from the host
    # arrays were gathered (strided) and copied again by each compiled call that took one.
    magnitude_on_device, phase_on_device = jnp.asarray(magnitude), jnp.asarray(phase_rad)
    template = _template(magnitude_on_device, phase_on_device, te)
    quality = _template_quality(template, phase_on_device, te, mask)
    # Its own compiled call: fused into `_combine_echoes` (as it was) the stencil and the fit
    # ran 110 ms together against 34 + 7 ms apart; region growing's seeds use it too.
    voxel_score = voxel_quality(jnp.asarray(quality))
    with_intercept = method != "romeo" and len(te) > 1
    if method == "romeo":
        unwrapped, offset = _romeo_echoes(
            magnitude_on_device, phase_on_device, te, mask, voxel, quality, voxel_score, template
        )
    else:
        unwrapped = _laplacian_echoes(phase_on_device, mask, voxel)
    field_hz, reliability, intercept = _combine_echoes(
        unwrapped,
        magnitude_on_device,
        jnp.asarray(te, jnp.float32),
        voxel_score,
        jnp.asarray(mask),
        with_intercept=with_intercept,
    )
    if method != "romeo":
        offset = jnp.angle(jnp.exp(1j * (phase_on_device[..., 0] + intercept)))
        offset = offset if len(te) > 1 else jnp.zeros_like(offset)
    return FieldEstimate(
        field_hz=np.asarray(field_hz, dtype=np.float32),
        reliability=np.asarray(reliability, dtype=np.float32),
        phase_offset_rad=np.asarray(offset, dtype=np.float32),
    )


@partial(jax.jit, static_argnames=("with_intercept",))
def _combine_echoes(unwrapped, magnitude, te, voxel_score, mask, with_intercept: bool):
    """Field (Hz), reliability and intercept from the unwrapped echoes, as one compiled graph.

    Run op by op, these few element-wise steps over the 4-D echo array cost more in dispatch
    and temporaries than the arithmetic (about a second on a 160x192x64x5 head).
    """
    slope, residual, intercept = _weighted_fit(unwrapped, magnitude, te, with_intercept)
    consistency = jnp.exp(-((residual / RESIDUAL_SCALE_RAD) ** 2))
    reliability = jnp.where(mask, voxel_score * consistency, 0.0)
    field_hz = jnp.where(mask, slope / (2.0 * np.pi), 0.0)
    return field_hz, reliability, intercept


def _validate(magnitude, phase_rad, te_s, mask, method) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown unwrapping method {method!r}; choose one of {METHODS}")
    if np.ndim(magnitude) != 4 or np.shape(magnitude) != np.shape(phase_rad):
        raise ValueError("magnitude and phase must be 4-D (x, y, z, echo) of equal shape")
    if len(te_s) != np.shape(magnitude)[3]:
        raise ValueError(f"{len(te_s)} echo times given for {np.shape(magnitude)[3]} echoes")
    if np.shape(mask) != np.shape(magnitude)[:3]:
        raise ValueError(f"mask shape {np.shape(mask)} differs from {np.shape(magnitude)[:3]}")


def _template(magnitude, phase_rad, te) -> tuple[jnp.ndarray, float, jnp.ndarray]:
    """Offset-free phase image at the shortest usable TE, its TE, and its magnitude.

    With two or more echoes this is the echo 2 minus echo 1 phase (the offset cancels); with
    one echo the offset cannot be separated and echo 1 is used as is.
    """
    if len(te) == 1:
        return jnp.asarray(phase_rad[..., 0]), te[0], jnp.asarray(magnitude[..., 0])
    difference = _wrapped_difference(phase_rad[..., 1], phase_rad[..., 0])
    return difference, te[1] - te[0], _geometric_mean(magnitude[..., 0], magnitude[..., 1])


@jax.jit
def _wrapped_difference(later: jnp.ndarray, earlier: jnp.ndarray) -> jnp.ndarray:
    """later - earlier phase, wrapped to [-pi, pi) by arithmetic: the angle of a complex
    exponential (as before) cost 50 ms a call on the 160x192x64 head, this about 2 ms."""
    return wrap(later - earlier)


@jax.jit
def _geometric_mean(a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
    return jnp.sqrt(a * b)


def _template_quality(template, phase_rad, te, mask) -> np.ndarray:
    """ROMEO edge qualities of the template, checked for consistency against a later echo."""
    template_phase, template_te, template_magnitude = template
    if len(te) >= 3:
        later = _wrapped_difference(phase_rad[..., 2], phase_rad[..., 0])
        scale = (te[2] - te[0]) / template_te
    else:
        later, scale = template_phase, 1.0
    reference = float(np.percentile(np.asarray(template_magnitude)[mask], 90)) if mask.any() else 1
    return np.asarray(
        edge_quality(
            template_phase,
            template_magnitude,
            jnp.asarray(mask),
            jnp.asarray(later),
            scale,
            reference,
        )
    )


def _romeo_echoes(magnitude, phase_rad, te, mask, voxel_mm, quality, voxel_score, template):  # noqa: PLR0913
    """Spatially unwrap the template, then remove the offset and unwrap each echo in time."""
    template_phase, template_te, _ = template
    template_unwrapped = romeo_unwrap(
        np.asarray(template_phase), quality, mask, voxel_score=np.asarray(voxel_score)
    )
    return _offset_and_temporal_unwrap(
        jnp.asarray(template_unwrapped / template_te),
        jnp.asarray(magnitude),
        jnp.asarray(phase_rad),
        jnp.asarray(mask),
        jnp.asarray(te, jnp.float32),
        voxel_mm,
    )


@partial(jax.jit, static_argnames=("voxel_mm",))
def _offset_and_temporal_unwrap(slope, magnitude, phase_rad, mask, te, voxel_mm):
    """MCPC-3D-S offset from the template slope, then echo-by-echo temporal unwrapping.

    Echo times are traced, not compile-time constants, so one compiled program (and one
    persistent cache entry, see `monitor.recon.warmup`) serves every protocol on a grid.

    The smoothed offset is biased where the true offset curves; that bias would leak into the
    field through the fit, so it is refined with the intercept left over after fitting all
    echoes (smoothed again): each pass multiplies the bias by (1 - smoothing), which is small
    for every slowly varying offset.

    Both fits are kept cheap because they are linear in the phase: the slope through echo k
    is updated from running sums, and the intercept of the echoes minus a common correction
    is the first intercept minus that correction, so the refinements need one fit, not one
    each (these passes over the 4-D echo array were most of this stage's time).
    """
    offset = jnp.zeros_like(slope)
    weight = magnitude[..., 0] * mask
    if te.shape[0] > 1:
        offset = _smooth_phase(phase_rad[..., 0] - slope * te[0], weight, voxel_mm)
    echoes = []
    numerator = denominator = jnp.zeros_like(slope)
    for k in range(te.shape[0]):
        echoes.append(temporal_unwrap(phase_rad[..., k] - offset, slope * te[k]))
        echo_weight = jnp.square(magnitude[..., k]) + FIT_WEIGHT_FLOOR
        numerator = numerator + echo_weight * te[k] * echoes[-1]
        denominator = denominator + echo_weight * te[k] ** 2
        slope = numerator / denominator
    unwrapped = jnp.stack(echoes, axis=-1)
    if te.shape[0] > 1 and OFFSET_REFINEMENTS > 0:
        _, _, leftover = _weighted_fit(unwrapped, magnitude, te, True)
        correction = _refined_correction(leftover, weight, voxel_mm)
        offset, unwrapped = offset + correction, unwrapped - correction[..., None]
    return unwrapped, offset


def _laplacian_echoes(phase_rad, mask, voxel_mm) -> jnp.ndarray:
    """Phase of each echo relative to echo 1, from Laplacian-unwrapped echo-to-echo steps.

    Unwrapping the steps (short spacing, offset-free, few wraps) rather than whole echoes keeps
    late echoes, whose neighbour differences may exceed pi, unwrappable. Each step's constant
    is unknown to Laplacian unwrapping and is set to zero mean in the mask, so the field comes
    out with zero mean in the mask. With one echo, the echo itself is unwrapped.
    """
    mask = jnp.asarray(mask)
    if phase_rad.shape[-1] == 1:
        steps = [laplacian_unwrap(jnp.asarray(phase_rad[..., 0]), mask, voxel_mm)]
    else:
        steps = [jnp.zeros(phase_rad.shape[:3], jnp.float32)]
        for k in range(1, phase_rad.shape[-1]):
            step = jnp.asarray(phase_rad[..., k] - phase_rad[..., k - 1])
            steps.append(laplacian_unwrap(step, mask, voxel_mm))
    steps = jnp.stack(steps, axis=-1)
    return jnp.cumsum(steps - _masked_mean(steps, mask), axis=-1)


def _smooth_phase(phase_rad, weight, voxel_mm) -> jnp.ndarray:
    """Weighted spherical-mean smoothing of a phase image, done on the complex exponential.

    The offset varies over centimetres, so the smoothing runs on 2x2x2 block sums (an eighth
    of the voxels and FFT work) and is brought back by linear interpolation between block
    centres.
    """
    coarse = _block_phasors(phase_rad, weight)
    return _fine_angle(_smoothed(coarse, voxel_mm), phase_rad.shape)


def _refined_correction(leftover_rad, weight, voxel_mm) -> jnp.ndarray:
    """The smoothed offset's correction: `OFFSET_REFINEMENTS` passes of correction +=
    smooth(leftover - correction), run on the 2x2x2 block grid and brought back once.

    On the blocks, subtracting the correction is a rotation of each block's summed phasor by
    the block's correction (the correction, smoothed over 4 mm, is treated as constant within
    a 2-voxel block), so the full-grid exponential, interpolation and angle (about 60 ms a
    pass on a 160x192x64 head) are paid once instead of once per pass.
    """
    coarse = _block_phasors(leftover_rad, weight)
    correction = jnp.zeros(coarse.shape, jnp.float32)
    for _ in range(OFFSET_REFINEMENTS):
        rotated = coarse * jnp.exp(-1j * correction)
        correction = correction + jnp.angle(_smoothed(rotated, voxel_mm))
    return _fine_angle(jnp.exp(1j * correction), leftover_rad.shape)


def _block_phasors(phase_rad, weight) -> jnp.ndarray:
    """Sum of weight * exp(i phase) over each 2x2x2 block."""
    signal = jnp.asarray(weight) * jnp.exp(1j * jnp.asarray(phase_rad))
    return blocks(signal, (2, 2, 2)).sum(axis=(1, 3, 5))


def _smoothed(coarse, voxel_mm) -> jnp.ndarray:
    """Spherical mean (radius OFFSET_SMOOTHING_MM) of complex block sums on the block grid."""
    coarse_voxel = tuple(2.0 * v for v in voxel_mm)
    padded = fourier.padded_shape(coarse.shape, coarse_voxel, margin_mm=OFFSET_SMOOTHING_MM)
    kernel = fourier.half_spectrum(fourier.smv_kernel(padded, coarse_voxel, OFFSET_SMOOTHING_MM))
    real, imaginary = (
        fourier.crop(fourier.convolve_half(fourier.pad(part, padded), kernel), coarse.shape)
        for part in (coarse.real, coarse.imag)
    )
    return real + 1j * imaginary


def _fine_angle(coarse, shape) -> jnp.ndarray:
    """Angle of complex block values interpolated to the full grid (interpolating the complex
    value, not the angle, so nothing jumps where the phase wraps)."""
    return jnp.angle(doubled(coarse.real, shape) + 1j * doubled(coarse.imag, shape))


@jax.jit
def _masked_mean(echoes: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    """Mean of each echo inside the mask, shape (echo,)."""
    return jnp.sum(echoes * mask[..., None], axis=(0, 1, 2)) / jnp.maximum(mask.sum(), 1)


def _weighted_fit(unwrapped, magnitude, te, with_intercept: bool):
    """Weighted least squares of phase against TE per voxel, weights magnitude^2.

    Returns (slope rad/s, rms residual rad, intercept rad); the intercept is 0 without one.
    The sums over echoes are written out echo by echo: as reductions over the (short, last)
    echo axis XLA:CPU ran them element by element, 104-141 ms a fit on a 160x192x64x5 head
    against 8-19 ms this way (2026-12-07).
    """
    echoes = range(te.shape[0])
    weight = [jnp.square(magnitude[..., k].astype(jnp.float32)) + FIT_WEIGHT_FLOOR for k in echoes]
    phase = [unwrapped[..., k] for k in echoes]
    t = jnp.asarray(te, jnp.float32)
    total = sum(weight)
    if with_intercept:
        t_mean = sum(weight[k] * t[k] for k in echoes) / total
        p_mean = sum(weight[k] * phase[k] for k in echoes) / total
        centred_t = [t[k] - t_mean for k in echoes]
        slope = sum(weight[k] * centred_t[k] * (phase[k] - p_mean) for k in echoes) / sum(
            weight[k] * centred_t[k] ** 2 for k in echoes
        )
        intercept = p_mean - slope * t_mean
    else:
        slope = sum(weight[k] * t[k] * phase[k] for k in echoes) / sum(
            weight[k] * t[k] ** 2 for k in echoes
        )
        intercept = jnp.zeros_like(slope)
    squares = sum(weight[k] * (phase[k] - intercept - slope * t[k]) ** 2 for k in echoes)
    return slope, jnp.sqrt(squares / total), intercept
