"""The key image tells a reader where patient left is, which structure is which, and when QC
failed."""

from __future__ import annotations

import colorsys
import itertools

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from PIL import Image
from support.images import red_pixel_count

from monitor.segment.keyimage import LABEL_COLOURS, edge_letters, write_key_image
from monitor.segment.structures import LABEL_NAMES

MIN_COLOUR_DISTANCE = 100 / 255
"""Least RGB distance (0-1 per channel) between two labels' colours: no two look alike."""


@pytest.mark.parametrize(
    ("affine", "axis", "letters"),
    [
        (np.diag([1.0, 1.0, 2.0, 1.0]), 0, ("L", "R")),
        (np.diag([-1.0, -1.0, 2.0, 1.0]), 0, ("R", "L")),  # LPS-like storage order
        (np.diag([-1.0, -1.0, 2.0, 1.0]), 1, ("A", "P")),
        (np.diag([1.0, 1.0, -2.0, 1.0]), 2, ("S", "I")),
        # a sagittal slab: voxel axis 0 runs posterior to anterior
        (np.array([[0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]], float), 0, ("P", "A")),
    ],
)
def test_edge_letters_follow_the_affine(affine, axis, letters):
    assert edge_letters(affine, axis) == letters


def test_a_failed_qc_is_written_across_the_image(tmp_path):
    rng = np.random.default_rng(0)
    magnitude = rng.uniform(0.0, 1.0, (40, 48, 20))
    chi = rng.normal(0.0, 0.02, magnitude.shape)
    labels = np.zeros(magnitude.shape, dtype=np.int16)
    labels[12:20, 14:24, 8:12] = 1
    args = (magnitude, chi, labels, (1.0, 1.0, 2.0))

    fine = write_key_image(tmp_path / "ok.png", *args, affine_ras=np.eye(4))
    failed = write_key_image(
        tmp_path / "failed.png", *args, affine_ras=np.eye(4), qc_failure="thalamus too large"
    )

    assert red_pixel_count(failed) > 20 * max(red_pixel_count(fine), 100)


@pytest.mark.parametrize("name", sorted(LABEL_NAMES.values()))
def test_every_label_colour_is_saturated_and_bright(name):
    """Grey, white, black or dark brown would vanish against the greyscale images."""
    _, saturation, value = colorsys.rgb_to_hsv(*to_rgb(LABEL_COLOURS[name]))
    assert saturation >= 0.5, (name, LABEL_COLOURS[name], saturation)
    assert value >= 0.5, (name, LABEL_COLOURS[name], value)


def test_label_colours_are_pairwise_distinct():
    """Every structure and side, left against right included, has a colour of its own."""
    for a, b in itertools.combinations(sorted(LABEL_NAMES.values()), 2):
        rgb_a, rgb_b = to_rgb(LABEL_COLOURS[a]), to_rgb(LABEL_COLOURS[b])
        distance = float(np.linalg.norm(np.subtract(rgb_a, rgb_b)))
        assert distance >= MIN_COLOUR_DISTANCE, (a, b, round(distance * 255))


def test_every_label_is_drawn_in_its_colour(tmp_path):
    magnitude = np.full((60, 40, 12), 0.5)
    labels = np.zeros(magnitude.shape, dtype=np.int16)
    for label in LABEL_NAMES:  # a row of blocks through the central plane
        labels[5 * label : 5 * label + 4, 15:25, 4:8] = label
    path = write_key_image(
        tmp_path / "key.png", magnitude, np.zeros(magnitude.shape), labels, (1.0, 1.0, 2.0)
    )
    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB")).astype(int)
    for name, colour in LABEL_COLOURS.items():
        want = np.round(np.array(to_rgb(colour)) * 255)
        exact = np.all(np.abs(rgb - want) <= 2, axis=-1)  # the legend patch, at full strength
        assert np.count_nonzero(exact) >= 50, name
