"""Border refinement on susceptibility contrast, inside the atlas prior (fast, synthetic)."""

import numpy as np
from scipy import ndimage

from monitor.segment.border import refine_borders

SHAPE = (40, 40, 20)
VOXEL = (1.0, 1.0, 2.0)


def _radius_mm(centre=(20, 20, 10)) -> np.ndarray:
    x, y, z = np.indices(SHAPE, dtype=float)
    return np.sqrt((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + ((z - centre[2]) * 2) ** 2)


def _ball(radius: float, centre=(20, 20, 10)) -> np.ndarray:
    return _radius_mm(centre) <= radius


def _prior(radius: float) -> np.ndarray:
    """Atlas-like probability of one structure: 0.5 at `radius`, falling to 0 eight mm
    outside it (Harvard-Oxford nuclei fade over about 5-10 mm)."""
    return np.clip(0.5 - (_radius_mm() - radius) / 16.0, 0.0, 1.0)[None]


def _chi(true_radius: float, rng_seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(rng_seed)
    chi = np.where(_ball(true_radius), 0.12, -0.02)
    return ndimage.gaussian_filter(chi, 0.6) + rng.normal(0, 0.006, SHAPE)


def test_border_moves_to_the_contrast_the_atlas_missed():
    prior = _prior(7.0)
    atlas_labels = np.where(prior[0] >= 0.5, 5, 0).astype(np.int16)
    truth = _ball(9.0)
    refined = refine_borders(atlas_labels, prior, (5,), _chi(9.0), np.ones(SHAPE, bool), VOXEL)

    def dice(a):
        return 2 * (a & truth).sum() / (a.sum() + truth.sum())

    assert dice(atlas_labels == 5) < 0.85
    assert dice(refined == 5) > 0.93


def test_without_contrast_the_atlas_border_stays():
    prior = _prior(7.0)
    atlas_labels = np.where(prior[0] >= 0.5, 5, 0).astype(np.int16)
    flat = np.random.default_rng(1).normal(0.0, 0.006, SHAPE)
    refined = refine_borders(atlas_labels, prior, (5,), flat, np.ones(SHAPE, bool), VOXEL)
    changed = (refined == 5) ^ (atlas_labels == 5)
    assert changed.sum() <= 0.1 * (atlas_labels == 5).sum()


def test_bright_tissue_outside_the_prior_support_is_never_taken():
    """A vein as bright as the nucleus, touching its prior's edge, inside a wide band."""
    prior = _prior(7.0)
    atlas_labels = np.where(prior[0] >= 0.5, 5, 0).astype(np.int16)
    chi = _chi(9.0)
    vein = _ball(4.0, centre=(20, 33, 10))  # joins the nucleus (r 9 mm)
    chi[vein] = 0.12
    outside_support = prior[0] < 0.05
    assert (vein & outside_support).sum() > 20  # the rule is really exercised
    refined = refine_borders(
        atlas_labels, prior, (5,), chi, np.ones(SHAPE, bool), VOXEL, band_mm=10.0
    )
    assert (refined == 5).any()
    assert not ((refined == 5) & outside_support).any()
    unclamped = refine_borders(  # the same without the support rule takes part of the vein
        atlas_labels,
        prior,
        (5,),
        chi,
        np.ones(SHAPE, bool),
        VOXEL,
        band_mm=10.0,
        support_probability=0.0,
    )
    assert ((unclamped == 5) & outside_support).any()
