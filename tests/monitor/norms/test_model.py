"""Normative model: curve shapes, scores, reference ranges and model files."""

from __future__ import annotations

import json
import math

import pytest

from monitor.norms import NormsError, default_model, load_model, save_model, score_record
from monitor.norms.model import NORM_SIDES, REFERENCE_RANGE_Z
from monitor.segment.structures import STRUCTURES


def test_default_model_covers_every_structure_and_side() -> None:
    model = default_model()
    assert model.source == "default"
    assert model.reference_region == "whole_brain"
    for structure in STRUCTURES:
        for side in NORM_SIDES:
            assert model.curve(structure, side) is not None, (structure, side)


def test_default_model_reproduces_seed_control_means_at_45() -> None:
    """Anchors documented in docs/norms.md: thalamus -1.1 ppb, basal ganglia pooled 54.8 ppb."""
    model = default_model()
    means = {s: model.curve(s).mean_ppb(45.0) for s in STRUCTURES}
    assert means["thalamus"] == pytest.approx(-1.1, abs=0.05)
    pooled = 0.35 * means["caudate"] + 0.5 * means["putamen"] + 0.15 * means["globus_pallidus"]
    assert pooled == pytest.approx(54.8, abs=0.2)


def test_basal_ganglia_saturate_and_thalamus_is_flat() -> None:
    model = default_model()
    for structure in ("caudate", "putamen", "globus_pallidus"):
        curve = model.curve(structure)
        early = curve.mean_ppb(30) - curve.mean_ppb(20)
        late = curve.mean_ppb(80) - curve.mean_ppb(70)
        assert early > late > 0, structure
    thalamus = model.curve("thalamus")
    assert abs(thalamus.mean_ppb(80) - thalamus.mean_ppb(20)) < thalamus.sd_ppb(50)


def test_score_z_percentile_and_range_agree() -> None:
    model = default_model()
    curve = model.curve("globus_pallidus", "left")
    age = 52.0
    expected, sd = curve.mean_ppb(age, "F"), curve.sd_ppb(age)
    score = model.score("globus_pallidus", "left", expected + 2.5 * sd, age, "F")
    assert score is not None
    assert score.z == pytest.approx(2.5)
    assert score.percentile == pytest.approx(99.379, abs=0.01)
    assert score.interpretation == "H"
    low, high = score.reference_range_ppb
    assert (high - low) / 2 == pytest.approx(REFERENCE_RANGE_Z * sd)
    assert curve.reference_range_ppb(age, "F") == pytest.approx((low, high))
    assert model.score("globus_pallidus", "left", expected, age, "F").interpretation == "N"
    assert model.score("globus_pallidus", "left", low - 0.1, age, "F").interpretation == "L"
    record = score_record(score)
    assert set(record) == {"z", "percentile", "reference_range_ppb", "interpretation"}
    assert record["interpretation"] == "H" and record["z"] == pytest.approx(2.5)
    assert score_record(None) == dict.fromkeys(record)


def test_no_score_without_age_value_or_coverage() -> None:
    model = default_model()
    assert model.score("thalamus", "bilateral", -3.0, None) is None
    assert model.score("thalamus", "bilateral", None, 40.0) is None
    assert model.score("thalamus", "bilateral", math.nan, 40.0) is None
    low, high = model.curve("thalamus").age_range_years
    assert model.score("thalamus", "bilateral", -3.0, low - 1) is None
    assert model.score("thalamus", "bilateral", -3.0, high + 1) is None


def test_sex_offset_applies_to_men_and_half_to_unknown(tmp_path) -> None:
    data = default_model().to_json()
    data["source"] = "site"
    for curve in data["curves"]:
        curve["params"]["male_offset_ppb"] = 4.0
    path = tmp_path / "site.json"
    path.write_text(json.dumps(data))
    curve = load_model(path).curve("putamen")
    assert curve.mean_ppb(50, "M") - curve.mean_ppb(50, "F") == pytest.approx(4.0)
    assert curve.mean_ppb(50, None) - curve.mean_ppb(50, "F") == pytest.approx(2.0)


def test_model_round_trips_through_a_file(tmp_path) -> None:
    path = tmp_path / "model.json"
    save_model(default_model(), path)
    again = load_model(path)
    assert again.to_json() == default_model().to_json()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["curves"][0].update(structure="amygdala"), "unknown structure"),
        (lambda d: d["curves"][0]["params"].pop("sd_ppb"), "lacks parameters"),
        (lambda d: d.update(source="guess"), "source"),
        (lambda d: d["curves"].append(d["curves"][0]), "two curves"),
    ],
)
def test_invalid_model_files_are_rejected_with_a_reason(tmp_path, mutate, message) -> None:
    data = default_model().to_json()
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(NormsError, match=message):
        load_model(path)


def test_missing_or_broken_model_file(tmp_path) -> None:
    with pytest.raises(NormsError, match="not found"):
        load_model(tmp_path / "absent.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(NormsError, match="not valid JSON"):
        load_model(broken)
