"""Simulated heads that differ from the atlas the segmentation registers to.

The atlas method registers the MNI152 template and pulls the Harvard-Oxford probabilities back
at maximum probability >= 0.5. A test subject drawn from exactly that would flatter it, so each
head here is made differently, and every draw comes from the subject's seed:

* **Truth labels**: Harvard-Oxford argmax where the largest probability is >= `TRUTH_THRESHOLD`
  (0.35, not 0.5), so true structures are larger and shaped differently from the atlas
  labels; image contrast follows these labels (hard edges, then a partial-volume blur).
* **Anatomy**: atrophy (ventricles pushed outwards, thalamus pulled inwards by displacement
  fields along smoothed structure gradients), then a random smooth warp (2-5 mm peak), then
  a head size change and pose: `STANDARD_RANGES` +-12 % (a few % anisotropic), +-20 deg
  pitch, +-12 deg roll and yaw, +-20 mm; `ISSUE_RANGES` +-15 % and +-20 deg about each axis.
* **Acquisition**: oblique 1x1x2 mm slab (tilt up to 20 deg, 56-72 slices, its centre moved
  by up to 12 mm), GRE magnitude with per-subject tissue values, a smooth bias field and
  Rician noise; a susceptibility map given as truth + correlated noise + a smooth residual
  background (segmentation-level evaluation: no phase simulation or reconstruction).
* **T1** (optional): same session, 1.5 mm isotropic (coarse to save test time), head moved
  by up to 4 degrees and 4 mm, tissue-class T1 contrast with skull and scalp, bias, noise.

`simulate_head(seed)` is deterministic; `simulate_head(seed, rescan=1)` is the same head and
susceptibility with a new pose, slab and noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial.transform import Rotation

from monitor.phantom import DEFAULT_PROPERTIES, air_only, grown_grid, with_smoothed_air
from monitor.phantom.anatomy import HeadModel, load_head_model, property_map
from monitor.phantom.geometry import (
    SubjectWarp,
    grid_points_mm,
    oblique_affine,
    sample_on_grid,
)
from monitor.segment.registration import b0_tilt_deg
from monitor.segment.structures import LABEL_IDS

__all__ = [
    "GRE_SHAPE",
    "ISSUE_RANGES",
    "STANDARD_RANGES",
    "TRUTH_THRESHOLD",
    "Pose",
    "PoseRanges",
    "VariedHead",
    "field_sources",
    "simulate_head",
    "true_b0_tilt_deg",
    "truth_volumes_ml",
]

TRUTH_THRESHOLD = 0.35
"""Truth labels take the most probable structure from this probability (the atlas path: 0.5)."""
GRE_SHAPE = (160, 192, 64)
GRE_VOXEL_MM = (1.0, 1.0, 2.0)
T1_SHAPE = (120, 144, 120)
T1_VOXEL_MM = (1.5, 1.5, 1.5)
TEMPLATE_CENTRE_MM = np.array([0.0, -18.0, 10.0])
"""Template point the slab is centred on before its random shift (the deep grey matter)."""

CHI_PPM = {
    "air": 0.0,
    "soft_tissue": 0.0,
    "skull": 0.0,
    "sinus_air": 0.0,
    "csf": 0.0,
    "grey_matter": 0.02,
    "white_matter": -0.03,
    "lateral_ventricle": 0.0,
    "thalamus": 0.01,
    "caudate": 0.06,
    "putamen": 0.05,
    "globus_pallidus": 0.15,
}
"""Mean susceptibility (ppm); each subject varies every structure and side around these."""
BACKGROUND_CHI_PPM = {
    kind: DEFAULT_PROPERTIES.chi_ppm[kind] for kind in ("air", "sinus_air", "skull")
}
"""Outside the brain, for the GRE phase only (`field_sources`): `monitor.phantom`'s values
(ppm against water-like tissue: air +9.4, compact bone diamagnetic, kept modest)."""
FIELD_MARGIN_MM = 30.0
"""Head simulated around the slab for its field: sources beyond it still reach the brain."""
CHI_SPREAD_PPM = {"thalamus": 0.01, "caudate": 0.015, "putamen": 0.02, "globus_pallidus": 0.04}
GRE_M0 = dict(DEFAULT_PROPERTIES.m0)
GRE_R2STAR = dict(DEFAULT_PROPERTIES.r2star_per_s)
T1_CONTRAST = {
    "air": 0.0,
    "soft_tissue": 0.75,
    "skull": 0.08,
    "sinus_air": 0.0,
    "csf": 0.15,
    "grey_matter": 0.55,
    "white_matter": 0.9,
    "lateral_ventricle": 0.15,
    "thalamus": 0.72,
    "caudate": 0.6,
    "putamen": 0.66,
    "globus_pallidus": 0.8,
}
"""MPRAGE-like tissue-class intensities: white > deep grey > cortex > CSF, bright scalp fat."""


@dataclass(frozen=True)
class Pose:
    """Head placement in the scanner: rotation (deg, about x/y/z), shift (mm), size factors."""

    angles_deg: tuple[float, float, float]
    shift_mm: tuple[float, float, float]
    scale: tuple[float, float, float]

    def scanner_to_head(self) -> np.ndarray:
        """4x4 backward map: scanner mm -> undeformed head (template) mm."""
        rotation = Rotation.from_euler("xyz", self.angles_deg, degrees=True).as_matrix()
        forward = rotation @ np.diag(self.scale)
        centre = TEMPLATE_CENTRE_MM
        matrix = np.eye(4)
        matrix[:3, :3] = forward
        matrix[:3, 3] = centre - forward @ centre + np.asarray(self.shift_mm)
        return np.linalg.inv(matrix)


@dataclass(frozen=True)
class VariedHead:
    """One simulated visit: inputs of `segment_deep_grey` and the truth to judge it by."""

    seed: int
    rescan: int
    magnitude: np.ndarray
    chi_ppm: np.ndarray
    """Measured-like map: truth + noise + residual background, zero outside the mask."""
    brain_mask: np.ndarray
    affine_ras: np.ndarray
    labels: np.ndarray
    """True labels in `monitor.segment.structures` ids."""
    true_chi_ppm: np.ndarray
    """Noise-free susceptibility on the slab (soft tissue, air and CSF 0 ppm)."""
    proton_density: np.ndarray
    """GRE signal at echo time 0 (tissue M0 times the receive bias), for `gre_acquisition`."""
    r2star_per_s: np.ndarray
    t1: np.ndarray | None
    t1_affine_ras: np.ndarray | None
    pose: Pose
    ventricle_growth: float
    """True lateral ventricle volume over the undeformed truth's (both sides)."""
    thalamus_change: float
    warp: _HeadWarp
    """Scanner mm to template mm, for sampling the head beyond the slab (`field_sources`)."""
    structure_chi_ppm: dict[str, float]
    """This subject's susceptibility per structure and side (ppm)."""


class _HeadWarp:
    """Backward map scanner mm -> template mm: pose, then smooth warp, then atrophy."""

    def __init__(self, pose: Pose, smooth: SubjectWarp, atrophy: _Atrophy) -> None:
        self._pose = pose.scanner_to_head()
        self._smooth = smooth
        self._atrophy = atrophy

    def __call__(self, points_mm: np.ndarray) -> np.ndarray:
        flat = points_mm.reshape(3, -1)
        head = self._pose[:3, :3] @ flat + self._pose[:3, 3:4]
        return self._atrophy(self._smooth(head)).reshape(points_mm.shape)


class _Mapped:
    """The warp already evaluated on the slab's voxel centres: both samplings (continuous
    and label volumes) reuse it instead of evaluating the warp twice."""

    def __init__(self, template_points_mm: np.ndarray) -> None:
        self._points = template_points_mm

    def __call__(self, points_mm: np.ndarray) -> np.ndarray:
        return self._points


@dataclass(frozen=True)
class _Atrophy:
    """Template-space displacement: ventricles grow by `ventricle_mm`, thalami shrink."""

    ventricle_mm: float
    thalamus_mm: float

    def __call__(self, points_mm: np.ndarray) -> np.ndarray:
        fields = _atrophy_fields()
        index = fields.to_box @ np.vstack([points_mm, np.ones(points_mm.shape[1])])
        moved = points_mm.copy()
        for axis in range(3):
            for field, amount in (
                (fields.ventricle, self.ventricle_mm),
                (fields.thalamus, -self.thalamus_mm),
            ):
                moved[axis] += amount * ndimage.map_coordinates(
                    field[axis], index[:3], order=1, mode="constant", cval=0.0
                )
        return moved


@dataclass(frozen=True)
class _Fields:
    ventricle: np.ndarray
    """(3, x, y, z) unit-peak field pointing into the ventricles (template mm directions)."""
    thalamus: np.ndarray
    to_box: np.ndarray
    """Template mm -> voxel index in the structure box."""


def _inward_field(mask: np.ndarray, sigma_mm: float, voxel_mm: np.ndarray) -> np.ndarray:
    """Gradient of the smoothed mask, scaled to unit peak: sampling further along it (a
    backward map) makes the structure grow; against it, shrink."""
    smooth = ndimage.gaussian_filter(mask.astype(np.float32), sigma_mm / voxel_mm)
    gradient = np.stack(np.gradient(smooth, *voxel_mm))
    return (gradient / max(float(np.linalg.norm(gradient, axis=0).max()), 1e-9)).astype(np.float32)


@lru_cache(maxsize=1)
def _truth_template() -> tuple[np.ndarray, HeadModel]:
    """Truth labels (our ids) on the template's structure box, at `TRUTH_THRESHOLD`."""
    head = load_head_model()
    probability = head.structure_probability
    best = probability.argmax(axis=3)
    ids = np.array([LABEL_IDS[name] for name in head.structure_names], dtype=np.int16)
    keep = probability.max(axis=3) >= TRUTH_THRESHOLD
    return np.where(keep, ids[best], 0).astype(np.int16), head


@lru_cache(maxsize=1)
def _atrophy_fields() -> _Fields:
    labels, head = _truth_template()
    voxel_mm = np.linalg.norm(head.affine[:3, :3], axis=0)
    ventricles = np.isin(
        labels, [LABEL_IDS["lateral_ventricle_left"], LABEL_IDS["lateral_ventricle_right"]]
    )
    thalami = np.isin(labels, [LABEL_IDS["thalamus_left"], LABEL_IDS["thalamus_right"]])
    box_affine = head.affine.copy()
    start = np.array([s.start for s in head.structure_box], dtype=float)
    box_affine[:3, 3] = head.affine[:3, :3] @ start + head.affine[:3, 3]
    # Directions are in voxel axes; the template grid is axis-aligned RAS, so they are mm.
    return _Fields(
        ventricle=_inward_field(ventricles, 4.0, voxel_mm),
        thalamus=_inward_field(thalami, 3.0, voxel_mm),
        to_box=np.linalg.inv(box_affine),
    )


def _property(values: dict[str, float], structure_values: dict[str, float]) -> np.ndarray:
    """Template-grid property map whose structures follow the truth labels (hard edges)."""
    labels, head = _truth_template()
    volume = property_map(head, values, {})
    box = volume[head.structure_box]
    kinds = {name: name.rsplit("_", 1)[0] for name in LABEL_IDS}
    for name, label in LABEL_IDS.items():
        box[labels == label] = structure_values.get(name, values[kinds[name]])
    return volume


def _truth_label_volume() -> np.ndarray:
    labels, head = _truth_template()
    volume = np.zeros(head.classes.shape, dtype=np.float32)
    volume[head.structure_box] = labels
    return volume


def _smooth_warp(rng: np.random.Generator, peak_mm: float) -> SubjectWarp:
    """Random displacement, smoothed over ~2.5 cm, scaled to `peak_mm` largest magnitude."""
    spacing, extent = 8.0, 240.0
    n = int(extent / spacing) + 1
    noise = rng.standard_normal((3, n, n, n))
    smooth = np.stack([ndimage.gaussian_filter(c, 25.0 / spacing) for c in noise])
    inner = smooth[:, 6:-6, 6:-6, 6:-6]
    smooth *= peak_mm / float(np.linalg.norm(inner, axis=0).max())
    return SubjectWarp(
        affine=np.eye(4),
        displacement_mm=smooth.astype(np.float32),
        lattice_origin_mm=TEMPLATE_CENTRE_MM - extent / 2.0,
        lattice_spacing_mm=spacing,
    )


@dataclass(frozen=True)
class PoseRanges:
    """How far a head may be from the template's size and pose (uniform, +- each value)."""

    size: float
    angles_deg: tuple[float, float, float]
    shift_mm: float


STANDARD_RANGES = PoseRanges(size=0.12, angles_deg=(20.0, 12.0, 12.0), shift_mm=20.0)
"""What the end-to-end tests use (see docs/segmentation.md: at the issue's ranges one of
their heads loses a second structure to QC through its reconstructed map)."""
ISSUE_RANGES = PoseRanges(size=0.15, angles_deg=(20.0, 20.0, 20.0), shift_mm=20.0)
"""Issue 11's robustness ranges: head size +-15 %, +-20 degrees about each axis, +-20 mm."""


def _random_pose(rng: np.random.Generator, ranges: PoseRanges) -> Pose:
    size = rng.uniform(1.0 - ranges.size, 1.0 + ranges.size)
    return Pose(
        angles_deg=tuple(float(rng.uniform(-a, a)) for a in ranges.angles_deg),
        shift_mm=tuple(rng.uniform(-ranges.shift_mm, ranges.shift_mm, 3)),
        scale=tuple(size * rng.uniform(0.97, 1.03, 3)),
    )


def true_b0_tilt_deg(head: VariedHead) -> tuple[float, float]:
    """B0's tilt in the head from the visit's pose, in `monitor.segment.registration.
    b0_tilt_deg`'s terms: the linear part of scanner -> template, RAS turned to LPS (same z)."""
    ras_to_lps = np.diag([-1.0, -1.0, 1.0])
    linear = ras_to_lps @ head.pose.scanner_to_head()[:3, :3] @ ras_to_lps
    return b0_tilt_deg(sitk.AffineTransform(linear.ravel().tolist(), (0.0, 0.0, 0.0)))


def _moved(pose: Pose, rng: np.random.Generator, degrees: float, mm: float) -> Pose:
    return Pose(
        angles_deg=tuple(np.add(pose.angles_deg, rng.uniform(-degrees, degrees, 3))),
        shift_mm=tuple(np.add(pose.shift_mm, rng.uniform(-mm, mm, 3))),
        scale=pose.scale,
    )


def _bias(shape: tuple[int, ...], rng: np.random.Generator, strength: float) -> np.ndarray:
    """Smooth multiplicative receive-field inhomogeneity, about +-`strength`."""
    axes = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij", sparse=True)
    terms = [axes[0], axes[1], axes[2], axes[0] * axes[1], axes[1] * axes[2], axes[2] ** 2]
    log_gain = sum(w * t for w, t in zip(rng.uniform(-1, 1, len(terms)), terms, strict=True))
    return np.exp(strength * log_gain / 2.0).astype(np.float32)


def _rician(signal: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    real = signal + sigma * rng.standard_normal(signal.shape, dtype=np.float32)
    imag = sigma * rng.standard_normal(signal.shape, dtype=np.float32)
    return np.hypot(real, imag).astype(np.float32)


def _jittered(values: dict[str, float], rng: np.random.Generator, spread: float):
    return {k: v * float(rng.uniform(1 - spread, 1 + spread)) for k, v in values.items()}


def _structure_chi(rng: np.random.Generator) -> dict[str, float]:
    values = {}
    for kind, spread in CHI_SPREAD_PPM.items():
        mean = CHI_PPM[kind] + rng.uniform(-spread, spread)
        for side in ("left", "right"):
            values[f"{kind}_{side}"] = float(mean + rng.uniform(-0.005, 0.005))
    return values


def _slab_affine(warp_pose: Pose, rng: np.random.Generator) -> tuple[np.ndarray, tuple]:
    """Oblique slab centred near the deep grey matter as the scanner sees it."""
    forward = np.linalg.inv(warp_pose.scanner_to_head())
    centre = forward[:3, :3] @ TEMPLATE_CENTRE_MM + forward[:3, 3] + rng.uniform(-8, 8, 3)
    centre[2] += rng.uniform(-4, 12)
    slices = int(rng.integers(56, 73))
    shape = (GRE_SHAPE[0], GRE_SHAPE[1], slices)
    tilt = (rng.uniform(-20, 20), rng.uniform(-10, 10), rng.uniform(-5, 5))
    return oblique_affine(shape, GRE_VOXEL_MM, tilt, centre), shape


def _t1(warp: _HeadWarp, pose: Pose, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    forward = np.linalg.inv(pose.scanner_to_head())
    centre = forward[:3, :3] @ np.array([0.0, -18.0, 0.0]) + forward[:3, 3]
    affine = oblique_affine(T1_SHAPE, T1_VOXEL_MM, rng.uniform(-5, 5, 3), centre)
    _, head = _truth_template()
    (t1,) = sample_on_grid(
        [_property(_jittered(T1_CONTRAST, rng, 0.05), {})],
        head.affine,
        affine,
        T1_SHAPE,
        warp,
        order=1,
    )
    t1 = _rician(t1 * _bias(T1_SHAPE, rng, 0.3), 0.02, rng)
    return t1, affine


def simulate_head(
    seed: int, rescan: int = 0, with_t1: bool = False, ranges: PoseRanges = STANDARD_RANGES
) -> VariedHead:
    """One deterministic subject (`seed`) and visit (`rescan`: new pose, slab and noise).

    `ranges` widens or narrows size and pose only; every other draw stays the same."""
    subject = np.random.default_rng([seed, 0])
    visit = np.random.default_rng([seed, 1 + rescan])
    _, head = _truth_template()
    atrophy = _Atrophy(subject.uniform(1.0, 2.5), subject.uniform(0.2, 0.6))
    smooth = _smooth_warp(subject, subject.uniform(2.0, 5.0))
    chi_values = _structure_chi(subject)
    gre_values = _jittered(GRE_M0, subject, 0.04)
    first_pose = _random_pose(subject, ranges)
    # A rescan is the same head (same size) placed anew in the scanner.
    pose = first_pose if rescan == 0 else _random_pose(visit, ranges)
    pose = Pose(pose.angles_deg, pose.shift_mm, first_pose.scale)
    warp = _HeadWarp(pose, smooth, atrophy)
    affine, shape = _slab_affine(pose, visit)

    mapped = _Mapped(warp(grid_points_mm(affine, shape)))
    chi, m0, r2star = sample_on_grid(
        [_property(CHI_PPM, chi_values), _property(gre_values, {}), _property(GRE_R2STAR, {})],
        head.affine,
        affine,
        shape,
        mapped,
        order=1,
    )
    labels, brain = sample_on_grid(
        [_truth_label_volume(), head.brain_mask.astype(np.float32)],
        head.affine,
        affine,
        shape,
        mapped,
        order=0,
    )
    mask = brain > 0.5
    te_s = visit.uniform(0.004, 0.008)
    proton_density = m0 * _bias(shape, visit, 0.4)
    magnitude = _rician(
        proton_density * np.exp(-r2star * te_s), 1.0 / visit.uniform(25.0, 50.0), visit
    )
    measured = _measured_chi(chi, mask, visit)

    t1 = t1_affine = None
    if with_t1:
        t1_pose = _moved(pose, visit, 4.0, 4.0)
        t1, t1_affine = _t1(_HeadWarp(t1_pose, smooth, atrophy), t1_pose, visit)
    growth, thalamus = _atrophy_effect(atrophy)
    return VariedHead(
        seed=seed,
        rescan=rescan,
        magnitude=magnitude,
        chi_ppm=measured,
        brain_mask=mask,
        affine_ras=affine,
        labels=labels.astype(np.int16),
        true_chi_ppm=chi.astype(np.float32),
        proton_density=proton_density.astype(np.float32),
        r2star_per_s=r2star.astype(np.float32),
        t1=t1,
        t1_affine_ras=t1_affine,
        pose=pose,
        ventricle_growth=growth,
        thalamus_change=thalamus,
        warp=warp,
        structure_chi_ppm=chi_values,
    )


def field_sources(
    head: VariedHead, margin_mm: float = FIELD_MARGIN_MM
) -> tuple[np.ndarray, tuple[slice, ...]]:
    """The head's susceptibility (ppm) on its GRE slab grown by `margin_mm` per side, with
    the sources a real head's phase carries besides the brain: air around the head and in
    the sinus, bone, and brain beyond the slab's ends; returns it and where the slab sits.

    The air is blurred as in `monitor.phantom` (no Gibbs ringing, the same field in the
    brain). `true_chi_ppm` stays the truth the maps are judged against.
    """
    voxel_mm = tuple(float(v) for v in np.linalg.norm(head.affine_ras[:3, :3], axis=0))
    grid = grown_grid(head.affine_ras, head.true_chi_ppm.shape, voxel_mm, margin_mm)
    values = {**CHI_PPM, **BACKGROUND_CHI_PPM}
    _, model = _truth_template()
    chi, air = sample_on_grid(
        [_property(values, head.structure_chi_ppm), _property(air_only(values), {})],
        model.affine,
        grid.affine,
        grid.shape,
        head.warp,
        order=1,
    )
    return with_smoothed_air(chi, air, voxel_mm), grid.inner


def _measured_chi(chi: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Truth blurred (~1 mm resolution loss), 6 ppb correlated noise, residual background."""
    blurred = ndimage.gaussian_filter(chi, (0.6, 0.6, 0.3))
    noise = ndimage.gaussian_filter(rng.standard_normal(chi.shape).astype(np.float32), 0.6)
    noise *= 0.006 / float(noise.std())
    background = (_bias(chi.shape, rng, 1.0) - 1.0) * 0.01
    return np.where(mask, blurred + noise + background, 0.0).astype(np.float32)


@lru_cache(maxsize=64)
def _atrophy_effect(atrophy: _Atrophy) -> tuple[float, float]:
    """(ventricle, thalamus) volume ratios the atrophy field causes on the template grid."""
    labels, head = _truth_template()
    box_affine = np.linalg.inv(_atrophy_fields().to_box)
    points = np.indices(labels.shape, dtype=np.float32).reshape(3, -1)
    world = box_affine[:3, :3] @ points + box_affine[:3, 3:4]
    index = _atrophy_fields().to_box @ np.vstack([atrophy(world), np.ones(world.shape[1])])
    moved = ndimage.map_coordinates(labels, index[:3], order=0, mode="constant")

    def ratio(names: tuple[str, str]) -> float:
        ids = [LABEL_IDS[n] for n in names]
        return float(np.isin(moved, ids).sum() / np.isin(labels, ids).sum())

    return (
        ratio(("lateral_ventricle_left", "lateral_ventricle_right")),
        ratio(("thalamus_left", "thalamus_right")),
    )


def truth_volumes_ml(head: VariedHead) -> dict[str, float]:
    """True volume per structure on the acquisition grid (ml)."""
    voxel_ml = abs(float(np.linalg.det(head.affine_ras[:3, :3]))) / 1000.0
    return {
        name: float((head.labels == label).sum()) * voxel_ml for name, label in LABEL_IDS.items()
    }
