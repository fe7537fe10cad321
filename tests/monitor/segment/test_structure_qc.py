"""Per-structure QC: one implausible structure is withheld with its reason, never the others;
refinement stays inside the prior's support (fast: external labels, no registration)."""

import math

import numpy as np
import pytest

from monitor.measure import measure_structures, report_block
from monitor.segment import LABEL_IDS, LABEL_NAMES, segment_deep_grey
from monitor.segment.external import ExternalLabels
from monitor.segment.qc import asymmetry_problems, expected_volume_problems, volume_problems
from monitor.segment.refinement import clamp_to_support, refinement_change
from monitor.segment.t1_input import T1Image, as_t1_image
from monitor.settings import SegmentationSettings

SHAPE = (96, 96, 40)
AFFINE = np.diag([1.0, 1.0, 2.0, 1.0])
AFFINE[:3, 3] = (-48.0, -48.0, -40.0)

BLOCKS = {  # structure -> (x, y, z) block start, size: plausible volumes (ml) on 1x1x2 mm
    "thalamus_left": ((20, 40, 15), (18, 18, 12)),
    "thalamus_right": ((58, 40, 15), (18, 18, 12)),
    "caudate_left": ((24, 62, 18), (10, 12, 14)),
    "caudate_right": ((62, 62, 18), (10, 12, 14)),
    "putamen_left": ((10, 52, 14), (10, 18, 14)),
    "putamen_right": ((76, 52, 14), (10, 18, 14)),
    "globus_pallidus_left": ((10, 30, 16), (8, 10, 10)),
    "globus_pallidus_right": ((78, 30, 16), (8, 10, 10)),
    "lateral_ventricle_left": ((40, 70, 20), (6, 10, 6)),
    "lateral_ventricle_right": ((50, 70, 20), (6, 10, 6)),
}


def _labels(**sizes: tuple[int, int, int]) -> np.ndarray:
    labels = np.zeros(SHAPE, dtype=np.int16)
    for name, (start, size) in BLOCKS.items():
        size = sizes.get(name, size)
        labels[tuple(slice(s, s + n) for s, n in zip(start, size, strict=True))] = LABEL_IDS[name]
    return labels


def _segment(labels: np.ndarray):
    external = ExternalLabels(labels, AFFINE, {name: [label] for name, label in LABEL_IDS.items()})
    settings = SegmentationSettings(method="external")
    magnitude = np.ones(SHAPE, dtype=np.float32)
    return segment_deep_grey(
        magnitude, AFFINE, np.ones(SHAPE, bool), settings, external_labels=external
    )


def test_one_implausible_structure_is_withheld_alone_and_measurement_skips_it():
    result = _segment(_labels(globus_pallidus_right=(8, 10, 24)))  # 3.84 ml: not a pallidum

    assert result.reportable, result.reason
    assert set(result.withheld) == {"globus_pallidus_right"}
    assert "volume 3.84 ml outside plausible" in result.withheld["globus_pallidus_right"]
    assert "globus_pallidus_right withheld" in result.reason
    assert "globus_pallidus_right" not in result.label_names.values()
    # The key image still sees the label.
    assert (result.labels == LABEL_IDS["globus_pallidus_right"]).any()

    chi = np.random.default_rng(0).normal(0.05, 0.01, SHAPE)
    measured = measure_structures(
        chi,
        result.labels,
        result.label_names,
        np.ones(SHAPE, bool),
        (1.0, 1.0, 2.0),
        "whole_brain",
        erode_voxels=0,
    )
    block = report_block(measured)
    assert math.isnan(block["globus_pallidus"]["right_ppb"])
    assert math.isnan(block["globus_pallidus"]["mean_ppb"])  # one side is not bilateral
    assert math.isnan(block["globus_pallidus"]["sides"]["right"]["volume_ml"])
    assert not math.isnan(block["globus_pallidus"]["left_ppb"])
    for structure in ("thalamus", "caudate", "putamen"):
        assert not math.isnan(block[structure]["mean_ppb"])


def test_left_right_mismatch_withholds_both_sides_only():
    result = _segment(_labels(putamen_left=(10, 18, 7)))  # 2.5 ml against 5.0 ml

    assert result.reportable
    assert set(result.withheld) == {"putamen_left", "putamen_right"}
    assert "left/right volumes 2.52/5.04 ml" in result.withheld["putamen_right"]


def test_every_structure_withheld_is_not_reportable():
    result = _segment(np.zeros(SHAPE, dtype=np.int16))
    assert not result.reportable
    assert result.reason.startswith("every structure withheld")
    assert len(result.withheld) == 8


def test_expected_volume_rule():
    expected = {"thalamus_left": 8.0, "caudate_left": 3.0}
    volumes = {"thalamus_left": 7.0, "caudate_left": 6.0}
    problems = expected_volume_problems(volumes, expected, (0.5, 1.7))
    assert list(problems) == ["caudate_left"]
    assert "2.00x" in problems["caudate_left"]
    assert asymmetry_problems({"caudate_left": 3.0, "caudate_right": 3.3}, 1.5) == {}


def test_refined_labels_never_leave_the_prior_support():
    prior = np.zeros((1, 6, 1, 1), dtype=np.float32)
    prior[0, :3] = 0.6  # the structure's registered prior covers voxels 0-2
    refined = np.array([1, 1, 1, 1, 1, 0], dtype=np.int16).reshape(6, 1, 1)  # grew to 0-4
    clamped, removed = clamp_to_support(refined, prior, (1,), 0.05)
    assert clamped.ravel().tolist() == [1, 1, 1, 0, 0, 0]
    assert removed == {1: 2}
    prior_labels = np.array([0, 1, 1, 0, 0, 0], dtype=np.int16).reshape(6, 1, 1)
    assert refinement_change(prior_labels, clamped, {1: "thalamus_left"}) == {"thalamus_left": 0.5}


def test_t1_input_accepts_a_pair_and_refuses_bad_arrays():
    image = as_t1_image((np.zeros((4, 4, 4)), np.eye(4)))
    assert isinstance(image, T1Image)
    with pytest.raises(ValueError, match="3-D"):
        as_t1_image((np.zeros((4, 4)), np.eye(4)))
    with pytest.raises(ValueError, match="NaN"):
        as_t1_image((np.full((4, 4, 4), np.nan), np.eye(4)))


def test_label_names_cover_every_structure_when_nothing_is_withheld():
    result = _segment(_labels())
    assert result.reportable and result.reason == "" and dict(result.withheld) == {}
    assert dict(result.label_names) == dict(LABEL_NAMES)


def test_volume_range_is_judged_at_template_head_size():
    """A large head's putamen (9.9 ml; 1.4x the template's brain volume) is plausible; the
    same volume in a template-sized head is not."""
    volumes = {
        f"{s}_{side}": v
        for s, v in (
            ("thalamus", 8.0),
            ("caudate", 4.0),
            ("putamen", 9.9),
            ("globus_pallidus", 2.0),
        )
        for side in ("left", "right")
    }
    ranges = SegmentationSettings().volume_ranges_ml
    assert set(volume_problems(volumes, ranges)) == {"putamen_left", "putamen_right"}
    assert volume_problems(volumes, ranges, head_volume_factor=1.4) == {}
    assert "at template head size" in volume_problems(volumes, ranges, 0.9)["putamen_left"]
