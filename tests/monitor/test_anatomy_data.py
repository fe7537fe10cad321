"""The shipped template and atlas load, align, and keep left on the left."""

from __future__ import annotations

import numpy as np

from monitor.anatomy_data import load_subcortical_atlas, load_template


def _centroid_mm(probability: np.ndarray, affine: np.ndarray) -> np.ndarray:
    index = np.argwhere(probability >= 0.5).mean(axis=0)
    return affine[:3, :3] @ index + affine[:3, 3]


def test_atlas_is_on_the_template_grid_with_left_at_negative_x():
    template, atlas = load_template(), load_subcortical_atlas()
    assert atlas.probability.shape[:3] == template.grey_matter.shape
    assert np.array_equal(atlas.affine, template.affine)
    assert float(atlas.probability.min()) >= 0.0 and float(atlas.probability.max()) <= 1.0
    for i, name in enumerate(atlas.names):
        x_mm = _centroid_mm(atlas.probability[..., i], atlas.affine)[0]
        assert (x_mm < -5) if name.endswith("_left") else (x_mm > 5), name


def test_deep_grey_matter_sits_in_template_grey_matter():
    template, atlas = load_template(), load_subcortical_atlas()
    putamen = atlas.probability[..., atlas.names.index("putamen_left")] >= 0.5
    ventricle = atlas.probability[..., atlas.names.index("lateral_ventricle_left")] >= 0.5
    assert template.grey_matter[putamen].mean() > 0.5
    assert template.grey_matter[ventricle].mean() + template.white_matter[ventricle].mean() < 0.5
