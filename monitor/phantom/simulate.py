"""Simulate a multi-echo gradient-echo head acquisition with known susceptibility.

The field is computed with the independent `qsm_forward` package (not with our own
`monitor.recon.fourier` kernels), so tests of the reconstruction cannot pass merely because
the simulator and the reconstruction share a mistake. `qsm_forward` builds its k-space grid
with `meshgrid(..., indexing="xy")` and swaps the first two B0 components to match; the
direction is then correct for any oblique B0, but voxel sizes of the first two axes are
swapped, hence the phantom requires equal in-plane voxel sizes (checked numerically against
`monitor.recon.fourier.dipole_kernel` in tests/monitor/phantom/test_simulate.py).

Air is smoothed for the field computation only (`AIR_SMOOTHING_MM`). A k-space dipole kernel on
a finite grid is band-limited, so the field of the 9.4 ppm air/tissue step rings (Gibbs) and
that ringing reaches into the brain as a non-harmonic "background" that no real head produces:
measured on the default phantom, the discrete Laplacian of the outside-brain field inside the
brain (eroded 2 voxels) was 13x that of the true local field, and V-SHARP applied to that
field alone left a residual of 1.2x the local field's RMS. A radially symmetric blur of a
source leaves its continuum field unchanged outside the blur radius (shell theorem), so
blurring only the air, which lies >= 4 mm from the brain, removes ringing without changing the
physical field in the brain; the susceptibility truth (`Phantom.chi_ppm`) is not blurred.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import qsm_forward
from scipy import ndimage

from monitor.phantom.anatomy import (
    DEFAULT_PROPERTIES,
    TissueProperties,
    label_map,
    load_head_model,
    property_map,
)
from monitor.phantom.geometry import (
    IDENTITY_WARP,
    oblique_affine,
    random_warp,
    sample_on_grid,
)
from monitor.recon.fourier import next_smooth_size
from monitor.types import GYROMAGNETIC_HZ_PER_T, Acquisition, b0_direction_in_voxel_axes

AIR_SMOOTHING_MM = 1.5
"""Gaussian sigma of the air blur used for the field: measured, V-SHARP's residual on the
outside-brain field fell from 1.2x to 0.54x the local field RMS at 1.5 mm and stayed there
for wider blurs; 3 sigma stays within the 4 mm that separate the brain from air."""
AIR_KINDS = ("air", "sinus_air")


@dataclass(frozen=True)
class PhantomConfig:
    """Everything that defines one simulated acquisition; the defaults are a realistic slab."""

    shape: tuple[int, int, int] = (176, 208, 72)
    voxel_mm: tuple[float, float, float] = (1.0, 1.0, 2.0)
    oblique_deg: tuple[float, float, float] = (18.0, 12.0, 0.0)
    """Rotation of the acquisition grid about scanner x, y, z (B0 stays along scanner z)."""
    centre_mm: tuple[float, float, float] = (0.0, -18.0, 10.0)
    n_echoes: int = 5
    te1_s: float = 0.004
    delta_te_s: float = 0.006
    b0_tesla: float = 3.0
    snr: float = 60.0
    """Signal of M0 = 1 (CSF) at TE = 0 over the noise standard deviation per channel."""
    structure_chi_ppm: Mapping[str, float] = field(default_factory=dict)
    """Per-structure overrides, e.g. {"globus_pallidus_left": 0.2}; others use the defaults."""
    properties: TissueProperties = DEFAULT_PROPERTIES
    warp_seed: int | None = None
    """None: template anatomy as is; an integer: a reproducible random subject."""
    warp_strength_mm: float = 3.0
    field_margin_mm: float = 30.0
    """Extra tissue/air simulated around the slab so sources outside the slab still count."""
    supersample: bool = True
    """Average sub-voxel samples of the 1 mm anatomy (partial volume); off for fast tests."""
    phase_offset_rad: float = 1.5
    """Amplitude of the smooth echo-independent phase (coil/transmit phase)."""

    def __post_init__(self) -> None:
        if abs(self.voxel_mm[0] - self.voxel_mm[1]) > 1e-6:
            raise ValueError("phantom needs equal in-plane voxel sizes (qsm_forward convention)")
        if self.n_echoes < 1 or self.te1_s <= 0 or self.delta_te_s <= 0:
            raise ValueError("phantom needs at least one echo and positive echo times")

    @property
    def te_s(self) -> tuple[float, ...]:
        return tuple(self.te1_s + i * self.delta_te_s for i in range(self.n_echoes))


FAST_CONFIG = PhantomConfig(
    shape=(96, 112, 80),
    voxel_mm=(2.0, 2.0, 2.0),
    oblique_deg=(15.0, 10.0, 0.0),
    n_echoes=4,
    field_margin_mm=10.0,
    supersample=False,
)
"""Coarse 2 mm phantom for unit tests (a few seconds after the anatomy is cached)."""


@dataclass(frozen=True)
class Phantom:
    """A simulated acquisition together with its ground truth on the acquisition grid."""

    acquisition: Acquisition
    chi_ppm: np.ndarray
    """Full source distribution (air, bone included); compare reconstructions in brain_mask."""
    labels: np.ndarray
    label_names: Mapping[int, str]
    brain_mask: np.ndarray
    local_field_ppm: np.ndarray
    """Field of the sources inside brain_mask only (what background removal should leave)."""
    total_field_ppm: np.ndarray
    """Field of all sources, minus its brain mean (the scanner's centre frequency)."""

    def roi_masks(self) -> dict[str, np.ndarray]:
        """Boolean mask per labelled structure or tissue, keyed by name."""
        return {name: self.labels == label for label, name in self.label_names.items()}


def forward_field_ppm(
    chi_ppm: np.ndarray, voxel_mm: tuple[float, float, float], b0_dir: tuple[float, ...]
) -> np.ndarray:
    """Field (ppm of B0) of a susceptibility map by the independent qsm_forward model.

    qsm_forward pads to twice the shape with the value of the last corner voxel; the volume
    is first extended with that value to 5-smooth sizes, which keeps its FFTs fast.
    """
    shape = tuple(next_smooth_size(n) for n in chi_ppm.shape)
    extended = np.full(shape, chi_ppm[-1, -1, -1], dtype=np.float64)
    extended[tuple(slice(0, n) for n in chi_ppm.shape)] = chi_ppm
    field_ppm = qsm_forward.generate_field(
        extended, mask=None, voxel_size=list(voxel_mm), B0_dir=list(b0_dir)
    )
    return field_ppm[tuple(slice(0, n) for n in chi_ppm.shape)].astype(np.float32)


def _local_field(chi: np.ndarray, mask: np.ndarray, voxel_mm, b0_dir) -> np.ndarray:
    """Field of the in-mask sources, computed on the mask's bounding box to save time."""
    (box,) = ndimage.find_objects(mask.astype(np.int8))
    local = np.zeros(mask.shape, dtype=np.float32)
    local[box] = forward_field_ppm(np.where(mask, chi, 0.0)[box], voxel_mm, b0_dir)
    return local


def _smooth_phase(shape: tuple[int, ...], amplitude: float, rng: np.random.Generator):
    """Echo-independent phase: random low-order polynomial over the grid (receive phase)."""
    coords = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij", sparse=True)
    terms = [coords[0], coords[1], coords[2], coords[0] * coords[1], coords[2] ** 2]
    weights = rng.uniform(-1, 1, len(terms) + 1) * amplitude
    return (weights[0] + sum(w * t for w, t in zip(weights[1:], terms, strict=True))).astype(
        np.float32
    )


@dataclass(frozen=True)
class GrownGrid:
    """A slab grown on every side so that sources beyond it count in its field."""

    shape: tuple[int, int, int]
    affine: np.ndarray
    inner: tuple[slice, slice, slice]
    """Where the slab sits in the grown grid."""


def grown_grid(
    affine: np.ndarray, shape: tuple[int, ...], voxel_mm: tuple[float, ...], margin_mm: float
) -> GrownGrid:
    """The slab grown by `margin_mm` per side (to 5-smooth sizes, for the FFTs)."""
    margin = [int(np.ceil(margin_mm / v)) for v in voxel_mm]
    grown = tuple(next_smooth_size(n + 2 * m) for n, m in zip(shape, margin, strict=True))
    grown_affine = np.array(affine, dtype=float)
    grown_affine[:3, 3] = grown_affine[:3, :3] @ (-np.asarray(margin, dtype=float)) + affine[:3, 3]
    inner = tuple(slice(m, m + n) for m, n in zip(margin, shape, strict=True))
    return GrownGrid(grown, grown_affine, inner)  # type: ignore[arg-type]


def air_only(chi_ppm: Mapping[str, float]) -> dict[str, float]:
    """The air classes' susceptibility, zero for every other class: the part of the sources
    that `with_smoothed_air` blurs."""
    return {kind: (value if kind in AIR_KINDS else 0.0) for kind, value in chi_ppm.items()}


def with_smoothed_air(
    chi_ppm: np.ndarray, air_ppm: np.ndarray, voxel_mm: tuple[float, ...]
) -> np.ndarray:
    """Field sources: `chi_ppm` with its air part (`air_ppm`) blurred by `AIR_SMOOTHING_MM`
    (see the module docstring: no Gibbs ringing, the same field in the brain)."""
    return (
        chi_ppm
        - air_ppm
        + ndimage.gaussian_filter(air_ppm, [AIR_SMOOTHING_MM / v for v in voxel_mm])
    )


def simulate_phantom(
    config: PhantomConfig = FAST_CONFIG, rng: np.random.Generator | int | None = 0
) -> Phantom:
    """Simulate one acquisition; `rng` seeds noise and phase offset (anatomy: config.warp_seed)."""
    rng = np.random.default_rng(rng)
    head = load_head_model()
    voxel = tuple(float(v) for v in config.voxel_mm)
    affine = oblique_affine(config.shape, voxel, config.oblique_deg, config.centre_mm)
    b0_dir = b0_direction_in_voxel_axes(affine)
    warp = (
        IDENTITY_WARP
        if config.warp_seed is None
        else random_warp(
            np.random.default_rng(config.warp_seed), config.warp_strength_mm, config.centre_mm
        )
    )
    supersample = tuple(max(1, round(v)) if config.supersample else 1 for v in voxel)
    grid = grown_grid(affine, config.shape, voxel, config.field_margin_mm)
    properties = config.properties
    chi_all, air = sample_on_grid(
        [
            property_map(head, properties.chi_ppm, config.structure_chi_ppm),
            property_map(head, air_only(properties.chi_ppm), {}),
        ],
        head.affine,
        grid.affine,
        grid.shape,
        warp,
        order=1,
        supersample=supersample,
    )
    m0, r2star = sample_on_grid(
        [property_map(head, properties.m0, {}), property_map(head, properties.r2star_per_s, {})],
        head.affine,
        affine,
        config.shape,
        warp,
        order=1,
        supersample=supersample,
    )
    labels, brain = sample_on_grid(
        [label_map(head), head.brain_mask.astype(np.float32)],
        head.affine,
        affine,
        config.shape,
        warp,
        order=0,
    )
    labels = labels.astype(np.int16)
    brain_mask = brain > 0.5
    chi = chi_all[grid.inner]

    total_field = forward_field_ppm(with_smoothed_air(chi_all, air, voxel), voxel, b0_dir)[
        grid.inner
    ]
    total_field -= total_field[brain_mask].mean()
    local_field = _local_field(chi, brain_mask, voxel, b0_dir)

    acquisition = _signal(config, m0, r2star, total_field, affine, b0_dir, rng)
    present = set(np.unique(labels).tolist())
    names = {k: v for k, v in head.label_names.items() if k in present}
    return Phantom(
        acquisition=acquisition,
        chi_ppm=chi,
        labels=labels,
        label_names=names,
        brain_mask=brain_mask,
        local_field_ppm=local_field,
        total_field_ppm=total_field,
    )


def _signal(config, m0, r2star, field_ppm, affine, b0_dir, rng) -> Acquisition:
    """Complex multi-echo signal with mono-exponential decay and complex Gaussian noise."""
    te = np.asarray(config.te_s, dtype=np.float32)
    frequency_hz = field_ppm * np.float32(1e-6 * GYROMAGNETIC_HZ_PER_T * config.b0_tesla)
    offset = _smooth_phase(config.shape, config.phase_offset_rad, rng)
    phase = offset[..., None] + 2 * np.pi * frequency_hz[..., None] * te
    signal = (m0[..., None] * np.exp(-r2star[..., None] * te)) * np.exp(1j * phase)
    sigma = 1.0 / config.snr
    signal = signal + sigma * (
        rng.standard_normal(signal.shape) + 1j * rng.standard_normal(signal.shape)
    )
    return Acquisition(
        magnitude=np.abs(signal).astype(np.float32),
        phase_rad=np.angle(signal).astype(np.float32),
        te_s=tuple(float(t) for t in te),
        voxel_mm=tuple(float(v) for v in config.voxel_mm),
        b0_tesla=config.b0_tesla,
        b0_dir_voxel=b0_dir,
        affine_ras=affine,
        label="phantom",
    )


def with_structure_chi(config: PhantomConfig, **chi_ppm: float) -> PhantomConfig:
    """Copy of `config` with some structures' susceptibility changed (follow-up visits)."""
    return replace(config, structure_chi_ppm={**config.structure_chi_ppm, **chi_ppm})
