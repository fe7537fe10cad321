"""Multi-echo GRE acquisitions of the varied heads, for end-to-end tests from DICOM.

`support.varied_heads` gives segmentation a simulated *measured* map; judging the product end
to end needs the raw data instead: complex multi-echo signal whose phase comes from the
head's susceptibility through the independent `qsm_forward` dipole model (not our own
kernel), so reconstruction, segmentation and measurement are all under test. That field
includes what a real head adds to the brain's own (`field_sources`): air around the head and
in the sinus, bone, and the brain beyond the slab, so background removal is under test too.
The head's anatomy, pose, slab and receive bias are those of `simulate_head`; echo times,
noise and the receive phase come from a separate random stream of the same seed.
"""

from __future__ import annotations

import numpy as np

from monitor.phantom.simulate import forward_field_ppm
from monitor.types import GYROMAGNETIC_HZ_PER_T, Acquisition, b0_direction_in_voxel_axes
from support.varied_heads import VariedHead, field_sources

__all__ = ["gre_acquisition"]

B0_TESLA = 3.0
ECHOES = 5


def gre_acquisition(head: VariedHead, snr: float = 60.0) -> Acquisition:
    """Five echoes (first 4-6 ms, spacing 4.5-6 ms) at 3 T with complex Gaussian noise of
    1/`snr` against white matter's M0 scale, and a smooth echo-independent receive phase."""
    rng = np.random.default_rng([head.seed, 50 + head.rescan])
    voxel_mm = tuple(float(v) for v in np.linalg.norm(head.affine_ras[:3, :3], axis=0))
    b0_dir = b0_direction_in_voxel_axes(head.affine_ras)
    sources, slab = field_sources(head)
    field_ppm = forward_field_ppm(sources.astype(np.float64), voxel_mm, b0_dir)[slab]
    field_ppm -= field_ppm[head.brain_mask].mean()
    te_s = rng.uniform(0.004, 0.006) + rng.uniform(0.0045, 0.006) * np.arange(ECHOES)
    frequency_hz = field_ppm * 1e-6 * GYROMAGNETIC_HZ_PER_T * B0_TESLA
    phase = _receive_phase(head.true_chi_ppm.shape, rng)[..., None] + (
        2 * np.pi * frequency_hz[..., None] * te_s
    )
    decay = head.proton_density[..., None] * np.exp(-head.r2star_per_s[..., None] * te_s)
    signal = decay * np.exp(1j * phase)
    sigma = 1.0 / snr
    signal += sigma * (rng.standard_normal(signal.shape) + 1j * rng.standard_normal(signal.shape))
    return Acquisition(
        magnitude=np.abs(signal).astype(np.float32),
        phase_rad=np.angle(signal).astype(np.float32),
        te_s=tuple(float(t) for t in te_s),
        voxel_mm=voxel_mm,
        b0_tesla=B0_TESLA,
        b0_dir_voxel=b0_dir,
        affine_ras=head.affine_ras,
        label=f"varied-head-{head.seed}",
    )


def _receive_phase(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Low-order polynomial phase up to about +-2 rad: coil phase, the same at every echo."""
    axes = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij", sparse=True)
    terms = [np.ones(1), axes[0], axes[1], axes[2], axes[0] * axes[1], axes[2] ** 2]
    weights = rng.uniform(-0.6, 0.6, len(terms))
    return sum(w * t for w, t in zip(weights, terms, strict=True)).astype(np.float32)
