"""Head model on the MNI template grid: tissue classes and per-tissue physical properties.

The template ships a brain only (no skull or scalp), so the head is built around it: a CSF
shell, a skull shell and a scalp shell by distance from the brain, soft tissue extruded below
the skull base (face and neck stand in), and an air-filled sphenoid sinus under the brain.
Air outside the head and in the sinus is what produces a realistic, strong background field.
Properties blend tissue fractions (grey/white probabilities, atlas probabilities) so the
phantom has partial-volume edges, while labels are hard (for ROI truth).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType

import numpy as np
from scipy import ndimage

from monitor.anatomy_data import load_subcortical_atlas, load_template
from monitor.segment.structures import structure_of

AIR, SOFT_TISSUE, SKULL, SINUS, CSF, GREY_MATTER, WHITE_MATTER = range(7)
FIRST_STRUCTURE_LABEL = 11
"""Atlas structures get labels 11, 12, ... in the order of `SubcorticalAtlas.names`."""

CLASS_NAMES = {
    SOFT_TISSUE: "soft_tissue",
    SKULL: "skull",
    SINUS: "sinus_air",
    CSF: "csf",
    GREY_MATTER: "grey_matter",
    WHITE_MATTER: "white_matter",
}

CSF_SHELL_MM, SKULL_SHELL_MM, SCALP_SHELL_MM = 2.0, 7.0, 6.0
CISTERN_CLOSING_MM = 6.0
"""Closing radius that makes fissures and basal cisterns CSF rather than outside space."""
NECK_TOP_MM = -25.0
"""Below this template z the head outline is extruded downwards (face, skull base, neck)."""
SINUS_CENTRE_MM, SINUS_RADII_MM = (0.0, 14.0, -40.0), (13.0, 12.0, 10.0)
SINUS_BRAIN_CLEARANCE_MM = 4.0


@dataclass(frozen=True)
class TissueProperties:
    """One physical property per tissue class and per atlas structure (absent: parent tissue).

    Susceptibility is in ppm relative to water-like tissue (air is +9.4 ppm on that scale).
    """

    chi_ppm: Mapping[str, float]
    r2star_per_s: Mapping[str, float]
    m0: Mapping[str, float]


def _frozen(values: dict[str, float]) -> Mapping[str, float]:
    return MappingProxyType(values)


DEFAULT_PROPERTIES = TissueProperties(
    # Literature-like 3 T values relative to CSF/water: cortex slightly paramagnetic, myelinated
    # white matter diamagnetic, iron-rich pallidum strongly paramagnetic; thalamus near zero;
    # compact bone diamagnetic but kept modest (marrow fat raises it).
    chi_ppm=_frozen(
        {
            "air": 9.4,
            "soft_tissue": 0.0,
            "skull": -1.5,
            "sinus_air": 9.4,
            "csf": 0.0,
            "grey_matter": 0.02,
            "white_matter": -0.03,
            "lateral_ventricle": 0.0,
            "thalamus": 0.01,
            "caudate": 0.06,
            "putamen": 0.05,
            "globus_pallidus": 0.15,
        }
    ),
    r2star_per_s=_frozen(
        {
            "air": 0.0,
            "soft_tissue": 30.0,
            "skull": 300.0,
            "sinus_air": 0.0,
            "csf": 2.0,
            "grey_matter": 15.0,
            "white_matter": 20.0,
            "lateral_ventricle": 2.0,
            "thalamus": 21.0,
            "caudate": 24.0,
            "putamen": 26.0,
            "globus_pallidus": 38.0,
        }
    ),
    # Gradient-echo proton-density-like contrast (short TE, small flip angle): CSF brightest,
    # grey above white matter, bone and air nearly silent.
    m0=_frozen(
        {
            "air": 0.0,
            "soft_tissue": 0.6,
            "skull": 0.05,
            "sinus_air": 0.0,
            "csf": 1.0,
            "grey_matter": 0.85,
            "white_matter": 0.7,
            "lateral_ventricle": 1.0,
            "thalamus": 0.78,
            "caudate": 0.82,
            "putamen": 0.8,
            "globus_pallidus": 0.72,
        }
    ),
)


@dataclass(frozen=True)
class HeadModel:
    """Tissue layout on the template grid (shared, read-only; build property maps from it)."""

    classes: np.ndarray
    """uint8 tissue class per voxel (AIR ... WHITE_MATTER), structures not included."""
    grey_matter: np.ndarray
    white_matter: np.ndarray
    structure_probability: np.ndarray
    """(x, y, z, n) float32 atlas probabilities inside `structure_box`, zero outside the skull."""
    structure_box: tuple[slice, slice, slice]
    """Block of the template grid holding every structure (the rest of the head has none)."""
    structure_names: tuple[str, ...]
    brain_mask: np.ndarray
    affine: np.ndarray

    @property
    def label_names(self) -> dict[int, str]:
        names = dict(CLASS_NAMES)
        names.update({FIRST_STRUCTURE_LABEL + i: n for i, n in enumerate(self.structure_names)})
        return names


def _world_grid(shape: tuple[int, ...], affine: np.ndarray) -> list[np.ndarray]:
    axes = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij", sparse=True)
    return [sum(affine[r, c] * axes[c] for c in range(3)) + affine[r, 3] for r in range(3)]


@lru_cache(maxsize=1)
def load_head_model() -> HeadModel:
    """Build (once per process) the head around the template brain; takes a few seconds."""
    template, atlas = load_template(), load_subcortical_atlas()
    gm, wm = template.grey_matter, template.white_matter
    box = ndimage.find_objects((atlas.probability.max(axis=3) > 0).astype(np.int8))[0]
    structure_support = np.zeros(gm.shape, dtype=bool)
    structure_support[box] = atlas.probability[box].max(axis=3) >= 0.5
    brain = ndimage.binary_fill_holes(((gm + wm) >= 0.5) | structure_support)
    voxel_mm = np.linalg.norm(template.affine[:3, :3], axis=0)
    intracranial = _intracranial_space(brain, voxel_mm)
    distance_mm = ndimage.distance_transform_edt(~intracranial, sampling=voxel_mm)
    classes = np.full(brain.shape, AIR, dtype=np.uint8)
    classes[distance_mm <= SKULL_SHELL_MM + SCALP_SHELL_MM] = SOFT_TISSUE
    classes[distance_mm <= SKULL_SHELL_MM] = SKULL
    classes[intracranial] = CSF
    x, y, z = _world_grid(brain.shape, template.affine)
    neck_top = int(np.argmin(np.abs(z[0, 0, :] - NECK_TOP_MM)))
    outline = classes[:, :, neck_top] != AIR
    below = classes[:, :, :neck_top]
    below[(below == AIR) & outline[:, :, None]] = SOFT_TISSUE
    # The bottom slice is repeated below the grid when sampling: keep it plain soft tissue.
    classes[:, :, 0] = np.where(outline, SOFT_TISSUE, AIR)
    sinus = (
        sum(
            ((c - c0) / r) ** 2
            for c, c0, r in zip((x, y, z), SINUS_CENTRE_MM, SINUS_RADII_MM, strict=True)
        )
        <= 1.0
    )
    classes[sinus & (distance_mm > SINUS_BRAIN_CLEARANCE_MM)] = SINUS
    in_brain = classes == CSF
    classes[in_brain & (gm + wm >= 0.5) & (gm >= wm)] = GREY_MATTER
    classes[in_brain & (gm + wm >= 0.5) & (gm < wm)] = WHITE_MATTER
    return HeadModel(
        classes=classes,
        grey_matter=np.where(in_brain, gm, 0.0).astype(np.float32),
        white_matter=np.where(in_brain, wm, 0.0).astype(np.float32),
        structure_probability=atlas.probability[box] * in_brain[box][..., None],
        structure_box=box,
        structure_names=atlas.names,
        brain_mask=brain,
        affine=template.affine,
    )


def _intracranial_space(brain: np.ndarray, voxel_mm: np.ndarray) -> np.ndarray:
    """Brain plus every CSF space: cisterns and fissures (closing), and a thin outer shell.

    Without the closing, wide CSF spaces open to the brain surface would be taken for
    extracranial space and filled with bone.
    """
    outside_mm = ndimage.distance_transform_edt(~brain, sampling=voxel_mm)
    dilated = outside_mm <= CISTERN_CLOSING_MM
    closed = ndimage.distance_transform_edt(dilated, sampling=voxel_mm) > CISTERN_CLOSING_MM
    return ndimage.binary_fill_holes(closed | brain) | (outside_mm <= CSF_SHELL_MM)


def property_map(
    head: HeadModel, values: Mapping[str, float], structure_values: Mapping[str, float]
) -> np.ndarray:
    """Per-voxel property on the template grid from per-tissue values (fraction-weighted).

    `values` is keyed by class and structure kind ("putamen"); `structure_values` by full
    structure name ("putamen_left") and overrides `values` for that side.
    """
    lookup = np.zeros(max(CLASS_NAMES) + 1, dtype=np.float32)
    lookup[AIR] = values["air"]
    for label, name in CLASS_NAMES.items():
        lookup[label] = values[name]
    # Inside the skull the fraction not grey or white is CSF; gm = wm = 0 outside it.
    lookup[GREY_MATTER] = lookup[WHITE_MATTER] = values["csf"]
    gm, wm = head.grey_matter, head.white_matter
    result = lookup[head.classes] * np.maximum(1.0 - gm - wm, 0.0)
    result += gm * values["grey_matter"] + wm * values["white_matter"]
    box = head.structure_box
    probability = head.structure_probability
    total = probability.sum(axis=3)
    scale = np.where(total > 1.0, 1.0 / np.maximum(total, 1e-6), 1.0)
    blended = result[box] * (1.0 - total * scale)
    for i, name in enumerate(head.structure_names):
        value = structure_values.get(name, values[structure_of(name)])
        blended += probability[..., i] * scale * value
    result[box] = blended
    return result


def label_map(head: HeadModel) -> np.ndarray:
    """Hard labels: tissue class, replaced by the most probable structure where p >= 0.5."""
    probability = head.structure_probability
    best = probability.argmax(axis=3)
    confident = np.take_along_axis(probability, best[..., None], axis=3)[..., 0] >= 0.5
    labels = head.classes.astype(np.int16)
    box = head.structure_box
    labels[box] = np.where(confident, FIRST_STRUCTURE_LABEL + best, labels[box])
    return labels
