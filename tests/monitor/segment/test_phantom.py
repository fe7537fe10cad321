"""Atlas segmentation on simulated subjects: Dice and ROI means against the true labels.

Each subject is the built-in head phantom (template anatomy, GRE-like contrast) with its own
random affine and smooth deformation, acquired as an oblique 1x1x2 mm slab.
"""

from pathlib import Path

import numpy as np
import pytest

from monitor.measure import measure_structures
from monitor.phantom import PhantomConfig, simulate_phantom
from monitor.segment import LABEL_NAMES, Segmentation, segment_deep_grey
from monitor.segment.evaluation import dice_per_structure, to_structure_ids
from monitor.segment.keyimage import write_key_image
from monitor.segment.structures import CSF_LABELS, LABEL_IDS
from monitor.settings import SegmentationSettings

pytestmark = pytest.mark.slow

SETTINGS = SegmentationSettings()


def _config(**changes) -> PhantomConfig:
    """A 1x1x2 mm oblique slab through the whole cerebrum, one echo, fast sampling."""
    base = dict(shape=(160, 192, 60), n_echoes=1, supersample=False, field_margin_mm=10.0)
    return PhantomConfig(**{**base, **changes})


def _segment(phantom, use_chi: bool) -> Segmentation:
    acq = phantom.acquisition
    chi = phantom.chi_ppm if use_chi else None
    return segment_deep_grey(
        acq.magnitude[..., 0], acq.affine_ras, phantom.brain_mask, SETTINGS, chi_ppm=chi
    )


@pytest.fixture(scope="module")
def chi_subject():
    """Default configuration: the chi map refines the registration around the nuclei."""
    phantom = simulate_phantom(_config(warp_seed=21), 21)
    return phantom, _segment(phantom, use_chi=True)


@pytest.fixture(scope="module")
def magnitude_subject():
    """No chi map: magnitude alone drives the refinement (labels coarser, see docs)."""
    phantom = simulate_phantom(_config(warp_seed=22), 22)
    return phantom, _segment(phantom, use_chi=False)


@pytest.mark.parametrize("subject", ["chi_subject", "magnitude_subject"])
def test_structures_overlap_true_labels(subject, request):
    phantom, result = request.getfixturevalue(subject)
    assert result.reportable, result.reason
    truth = to_structure_ids(phantom.labels, phantom.label_names)
    dice = dice_per_structure(result.labels, truth)
    structures = {name: score for name, score in dice.items() if name not in CSF_LABELS}
    assert len(structures) == 8
    assert min(structures.values()) >= 0.75, structures


def test_the_chi_model_lies_on_the_subject_s_nuclei(chi_subject):
    """The registered template's susceptibility model (for the geometry correction): each
    nucleus where the labels put it, grey/white tissue values inside the brain."""
    phantom, result = chi_subject
    model = result.chi_model
    assert model is not None
    assert model.tissue_ppm.shape == result.labels.shape
    inside = phantom.brain_mask
    assert -0.05 < float(model.tissue_ppm[inside].mean()) < 0.03  # typical WM -30, GM +20 ppb
    for structure, probability in model.nuclei.items():
        nucleus = probability > 0.5
        labelled = np.isin(
            result.labels, [LABEL_IDS[f"{structure}_{s}"] for s in ("left", "right")]
        )
        dice = 2 * (nucleus & labelled).sum() / (nucleus.sum() + labelled.sum())
        assert dice >= 0.6, (structure, dice)
    values = {s: 0.1 for s in model.nuclei}
    assert float(model.chi_ppm(values)[labelled].mean()) > float(model.tissue_ppm[labelled].mean())


def test_roi_means_match_those_of_true_labels(chi_subject):
    phantom, result = chi_subject
    truth = to_structure_ids(phantom.labels, phantom.label_names)
    args = (LABEL_NAMES, phantom.brain_mask, phantom.acquisition.voxel_mm, "whole_brain")
    ours = measure_structures(phantom.chi_ppm, result.labels, *args).per_side
    true = measure_structures(phantom.chi_ppm, truth, *args).per_side
    differences = {name: abs(ours[name].mean_ppb - true[name].mean_ppb) for name in true}
    assert max(differences.values()) <= 3.0, differences


def test_the_same_input_gives_identical_labels(chi_subject):
    """A reprocessed study must report the same numbers. Multi-threaded ITK registration did
    not: the B-spline stage amplified summation-order noise into label changes (see
    `monitor.segment.registration.reproducible_registration`)."""
    phantom, first = chi_subject
    again = _segment(phantom, use_chi=True)
    assert (again.labels == first.labels).all(), int((again.labels != first.labels).sum())
    assert again.qc["refinement_change"] == first.qc["refinement_change"]


def test_key_image_is_a_png(chi_subject, tmp_path: Path):
    phantom, result = chi_subject
    acq = phantom.acquisition
    path = write_key_image(
        tmp_path / "qc" / "key.png",
        acq.magnitude[..., 0],
        phantom.chi_ppm,
        result.labels,
        acq.voxel_mm,
    )
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000  # three planes of anatomy, not an empty canvas


def test_slab_above_the_deep_grey_matter_is_not_reportable():
    phantom = simulate_phantom(
        _config(shape=(160, 192, 16), centre_mm=(0.0, -18.0, 62.0), warp_seed=23), 23
    )
    result = _segment(phantom, use_chi=True)
    assert not result.reportable
    assert any(word in result.reason for word in ("covers", "volume", "similarity", "overlap"))
