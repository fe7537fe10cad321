"""Segmentation input handling, external label maps and QC rules (fast: no registration)."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from monitor.segment import LABEL_IDS, segment_deep_grey
from monitor.segment.external import map_external_labels
from monitor.segment.qc import coverage_failures, registration_failures, volume_failures
from monitor.settings import SegmentationSettings

SHAPE = (96, 96, 40)
AFFINE = np.diag([1.0, 1.0, 2.0, 1.0])
AFFINE[:3, 3] = (-48.0, -48.0, -40.0)

ASEG_BLOCKS = {  # aseg value -> (x, y, z) block start; sizes give plausible volumes
    10: ((20, 40, 15), (18, 18, 12)),  # left thalamus 7.8 ml
    49: ((58, 40, 15), (18, 18, 12)),
    11: ((24, 62, 18), (10, 12, 14)),  # caudate 3.4 ml
    50: ((62, 62, 18), (10, 12, 14)),
    12: ((10, 52, 14), (10, 18, 14)),  # putamen 5.0 ml
    51: ((76, 52, 14), (10, 18, 14)),
    13: ((10, 30, 16), (8, 10, 10)),  # pallidum 1.6 ml
    52: ((78, 30, 16), (8, 10, 10)),
}


def _aseg() -> np.ndarray:
    aseg = np.zeros(SHAPE, dtype=np.int16)
    for value, (start, size) in ASEG_BLOCKS.items():
        aseg[tuple(slice(s, s + n) for s, n in zip(start, size, strict=True))] = value
    return aseg


def test_external_aseg_on_another_grid_is_mapped_and_reportable(tmp_path: Path):
    aseg = _aseg()
    # Same frame of reference, 1 mm isotropic grid: every slice written twice.
    fine_affine = AFFINE.copy()
    fine_affine[2, 2] = 1.0
    fine_affine[2, 3] -= 0.5
    path = tmp_path / "aseg.nii.gz"
    nib.save(nib.Nifti1Image(np.repeat(aseg, 2, axis=2), fine_affine), path)
    settings = SegmentationSettings(method="external")
    magnitude = np.ones(SHAPE, dtype=np.float32)
    mask = np.ones(SHAPE, dtype=bool)

    result = segment_deep_grey(magnitude, AFFINE, mask, settings, external_labels=path)

    assert result.reportable, result.reason
    assert result.method == "external"
    expected = map_external_labels(aseg, settings.external_labels)
    assert np.array_equal(result.labels, expected)
    assert result.qc["volumes_ml"]["thalamus_left"] == pytest.approx(18 * 18 * 12 * 2 / 1000)


def test_external_label_map_by_configuration():
    aseg = np.array([[[10, 49, 7, 0]]])
    labels = map_external_labels(aseg, {"thalamus_left": [10, 7]})
    assert labels.tolist() == [[[LABEL_IDS["thalamus_left"], 0, LABEL_IDS["thalamus_left"], 0]]]
    with pytest.raises(ValueError, match="unknown structure"):
        map_external_labels(aseg, {"hippocampus_left": [17]})


def test_external_without_a_file_is_not_reportable():
    settings = SegmentationSettings(method="external")
    result = segment_deep_grey(np.ones(SHAPE), AFFINE, np.ones(SHAPE, bool), settings)
    assert not result.reportable
    assert "none given" in result.reason


@pytest.mark.parametrize(
    ("magnitude", "mask", "reason"),
    [
        (np.ones((4, 4)), np.ones((4, 4), bool), "3-D"),
        (np.ones(SHAPE), np.ones((4, 4, 4), bool), "mask shape"),
        (np.full(SHAPE, np.nan), np.ones(SHAPE, bool), "NaN"),
        (np.ones(SHAPE), np.zeros(SHAPE, bool), "smaller than 50 ml"),
    ],
)
def test_bad_input_becomes_not_reportable_with_a_reason(magnitude, mask, reason):
    result = segment_deep_grey(magnitude, AFFINE, mask, SegmentationSettings())
    assert not result.reportable
    assert reason in result.reason


def test_volume_rule_names_the_structure_and_range():
    ranges = SegmentationSettings().volume_ranges_ml
    volumes = {
        f"{s}_{side}": (lo + hi) / 2 for s, (lo, hi) in ranges.items() for side in ("left", "right")
    }
    assert volume_failures(volumes, ranges) == []
    volumes["globus_pallidus_right"] = 0.1
    failures = volume_failures(volumes, ranges)
    assert len(failures) == 1 and "globus_pallidus_right volume 0.10 ml" in failures[0]


def test_registration_and_coverage_rules():
    assert registration_failures(1.1, 1.03, 0.9, 0.8, (1.0, 0.95, 1.05), 0.3) == []
    failures = registration_failures(1.01, 1.03, 0.5, 0.8, (1.6, 1.0, 1.0), 0.3)
    assert len(failures) == 3
    assert coverage_failures({"putamen_left": 0.5, "putamen_right": 1.0}, 0.9) == [
        "slab covers only 50% of putamen_left"
    ]
