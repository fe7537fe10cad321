"""ROI statistics: known arrays give known numbers, in ppb, with the documented erosion."""

import math

import numpy as np
import pytest

from monitor.measure import erode_in_plane, measure_structures, report_block
from monitor.segment.structures import LABEL_IDS, LABEL_NAMES

VOXEL = (1.0, 1.0, 2.0)
SHAPE = (40, 40, 12)
BLOCK_VOXELS = 6 * 6 * 4
BACKGROUND_PPM = 0.05


def _blocks(values_ppm: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Each structure is a 6x6x4 block of constant chi on a constant background."""
    chi = np.full(SHAPE, BACKGROUND_PPM)
    labels = np.zeros(SHAPE, dtype=np.int16)
    for i, (name, value) in enumerate(values_ppm.items()):
        x, y = 2 + 8 * (i % 4), 2 + 8 * (i // 4)
        labels[x : x + 6, y : y + 6, 4:8] = LABEL_IDS[name]
        chi[x : x + 6, y : y + 6, 4:8] = value
    return chi, labels


def test_whole_brain_reference_ppb_volume_and_eroded_count():
    values = {"putamen_left": 0.10, "putamen_right": 0.12, "thalamus_left": -0.02}
    chi, labels = _blocks(values)
    mask = np.ones(SHAPE, dtype=bool)
    n = np.prod(SHAPE)
    brain_mean = (
        BACKGROUND_PPM + sum((v - BACKGROUND_PPM) * BLOCK_VOXELS for v in values.values()) / n
    )

    m = measure_structures(chi, labels, LABEL_NAMES, mask, VOXEL, "whole_brain")

    left = m.per_side["putamen_left"]
    assert m.reference == "whole_brain"
    assert m.reference_offset_ppb == pytest.approx(brain_mean * 1000)
    assert m.whole_brain_mean_ppb == pytest.approx(0.0, abs=1e-9)
    assert left.mean_ppb == pytest.approx((0.10 - brain_mean) * 1000)
    assert left.median_ppb == pytest.approx((0.10 - brain_mean) * 1000)
    assert left.sd_ppb == pytest.approx(0.0, abs=1e-9)
    # 6x6x4 voxels of 2 ul = 0.288 ml segmented; eroding one voxel in-plane leaves 4x4x4.
    assert left.volume_ml == pytest.approx(BLOCK_VOXELS * 2 / 1000)
    assert left.voxel_count == 64
    both = m.bilateral["putamen"]
    assert both.voxel_count == 128
    assert both.mean_ppb == pytest.approx((0.11 - brain_mean) * 1000)
    assert both.volume_ml == pytest.approx(2 * BLOCK_VOXELS * 2 / 1000)


def test_median_and_sample_sd_of_a_known_distribution():
    chi, labels = _blocks({"caudate_left": 0.0})
    for k, value in enumerate([0.01, 0.02, 0.03, 0.05]):
        chi[..., 4 + k] = np.where(labels[..., 4 + k] > 0, value, chi[..., 4 + k])
    mask = labels > 0  # brain = the block: reference mean is the block mean (27.5 ppb)
    m = measure_structures(chi, labels, LABEL_NAMES, mask, VOXEL, "whole_brain", erode_voxels=0)
    s = m.per_side["caudate_left"]
    assert s.mean_ppb == pytest.approx(0.0, abs=1e-9)
    assert s.median_ppb == pytest.approx(25.0 - 27.5)
    expected_sd = math.sqrt(
        sum((v - 27.5) ** 2 for v in [10, 20, 30, 50]) * 36 / (BLOCK_VOXELS - 1)
    )
    assert s.sd_ppb == pytest.approx(expected_sd)
    assert s.voxel_count == BLOCK_VOXELS


def test_voxels_outside_the_brain_mask_are_not_measured():
    chi, labels = _blocks({"globus_pallidus_right": 0.2})
    mask = np.ones(SHAPE, dtype=bool)
    mask[:, :, 6:] = False  # the top two of four slices fall outside
    m = measure_structures(chi, labels, LABEL_NAMES, mask, VOXEL, "whole_brain", erode_voxels=0)
    s = m.per_side["globus_pallidus_right"]
    assert s.voxel_count == BLOCK_VOXELS // 2
    assert s.volume_ml == pytest.approx(BLOCK_VOXELS // 2 * 2 / 1000)


def test_csf_reference_uses_the_ventricles():
    chi, labels = _blocks({"putamen_left": 0.10, "lateral_ventricle_left": 0.01})
    mask = np.ones(SHAPE, dtype=bool)
    m = measure_structures(chi, labels, LABEL_NAMES, mask, VOXEL, "csf")
    assert m.reference == "csf"
    assert m.reference_offset_ppb == pytest.approx(10.0)
    assert m.per_side["putamen_left"].mean_ppb == pytest.approx(90.0)
    # Against the whole brain as well: the brain's mean on the CSF scale, subtracted.
    brain_mean_ppb = (
        BACKGROUND_PPM
        + ((0.10 - BACKGROUND_PPM) + (0.01 - BACKGROUND_PPM)) * BLOCK_VOXELS / np.prod(SHAPE)
    ) * 1000 - 10.0
    assert m.whole_brain_mean_ppb == pytest.approx(brain_mean_ppb)
    assert m.per_side["putamen_left"].mean_ppb - m.whole_brain_mean_ppb == pytest.approx(
        100.0 - (brain_mean_ppb + 10.0)
    )


def test_missing_structure_gives_nan_and_zero_count():
    chi, labels = _blocks({"putamen_left": 0.1})
    m = measure_structures(chi, labels, LABEL_NAMES, np.ones(SHAPE, bool), VOXEL, "whole_brain")
    s = m.per_side["thalamus_right"]
    assert s.voxel_count == 0 and s.volume_ml == 0.0
    assert math.isnan(s.mean_ppb)


def test_erosion_stays_within_planes_across_the_thick_axis():
    region = np.zeros((8, 8, 8), dtype=bool)
    region[1:7, 1:7, 1:7] = True
    eroded = erode_in_plane(region, (2.0, 1.0, 1.0), 1)  # slice axis is x here
    assert eroded[1:7, 2:6, 2:6].all()  # every slice along x kept
    assert eroded.sum() == 6 * 4 * 4


def test_bad_inputs_are_rejected_with_a_reason():
    chi, labels = _blocks({"putamen_left": 0.1})
    mask = np.ones(SHAPE, dtype=bool)
    with pytest.raises(ValueError, match="unknown reference"):
        measure_structures(chi, labels, LABEL_NAMES, mask, VOXEL, "cerebellum")
    with pytest.raises(ValueError, match="no ventricle"):
        measure_structures(chi, labels, LABEL_NAMES, mask, VOXEL, "csf")
    with pytest.raises(ValueError, match="differ in shape"):
        measure_structures(chi[:-1], labels, LABEL_NAMES, mask, VOXEL, "whole_brain")


def test_report_block_shape_and_values():
    chi, labels = _blocks({"thalamus_left": 0.03, "thalamus_right": 0.05})
    mask = np.ones(SHAPE, dtype=bool)
    m = measure_structures(chi, labels, LABEL_NAMES, mask, VOXEL, "whole_brain")
    block = report_block(m)
    assert set(block) == {
        "thalamus",
        "caudate",
        "putamen",
        "globus_pallidus",
        "reference",
        "whole_brain_mean_ppb",
    }
    assert block["reference"] == "whole_brain"
    assert block["whole_brain_mean_ppb"] == pytest.approx(0.0, abs=1e-9)
    thalamus = block["thalamus"]
    assert set(thalamus) == {
        "mean_ppb",
        "left_ppb",
        "right_ppb",
        "median_ppb",
        "sd_ppb",
        "volume_ml",
        "voxel_count",
        "sides",
    }
    assert thalamus["right_ppb"] - thalamus["left_ppb"] == pytest.approx(20.0)
    left, right = thalamus["sides"]["left"], thalamus["sides"]["right"]
    assert left["mean_ppb"] == thalamus["left_ppb"] and right["mean_ppb"] == thalamus["right_ppb"]
    assert left["voxel_count"] + right["voxel_count"] == thalamus["voxel_count"]
    assert left["volume_ml"] + right["volume_ml"] == pytest.approx(thalamus["volume_ml"])
    assert thalamus["mean_ppb"] == pytest.approx((thalamus["left_ppb"] + thalamus["right_ppb"]) / 2)
