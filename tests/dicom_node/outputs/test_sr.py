"""TID 1500 SR: valid for dciodvfy and dsrdump, and its numbers are the record's numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from support.outputs_support import (
    DERIVATIONS,
    PLAIN_NUMBERS,
    SIDE_CODES,
    STRUCTURES,
    WHOLE_BRAIN_MEAN_PPB,
    assembled_study,
    dsrdump,
    make_record,
    record_side,
    reported_numbers,
    save,
    validator_errors,
)

from dicom_node.assemble.study import AssembledAcquisition
from dicom_node.outputs.common import read_sources
from dicom_node.outputs.sr import build_measurement_report
from monitor.record import ProcessingRecord
from monitor.record.values import REPORTED_DECIMALS
from monitor.settings import Settings


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> AssembledAcquisition:
    return assembled_study(tmp_path_factory.mktemp("source"))


def build(study: AssembledAcquisition, record: dict[str, Any]) -> Dataset:
    sources = read_sources(study.reference_paths)
    return build_measurement_report(
        ProcessingRecord.from_json(record), sources, settings=Settings()
    )


@pytest.mark.parametrize("risk_level", ["elevated", "not elevated", "indeterminate"])
def test_sr_passes_dciodvfy_and_dsrdump(
    study: AssembledAcquisition, tmp_path: Path, risk_level: str
) -> None:
    path = save(build(study, make_record(study, risk_level=risk_level)), tmp_path / "sr.dcm")
    assert validator_errors(path) == []
    dump = dsrdump(path)
    assert dump.returncode == 0, dump.stderr
    assert not [line for line in dump.stderr.splitlines() if line.startswith(("E:", "F:"))]
    assert "Magnetic Susceptibility" in dump.stdout
    assert risk_level.capitalize() in dump.stdout


def test_sr_numbers_equal_the_record(study: AssembledAcquisition, tmp_path: Path) -> None:
    record = make_record(study)
    reported = reported_numbers(dcmread(save(build(study, record), tmp_path / "sr.dcm")))
    assert set(reported) == {(s, side) for s in STRUCTURES for side in SIDE_CODES.values()}
    for (structure, side), numbers in reported.items():
        want = record_side(record, structure, side)
        expected = {k: want[k] for k in [*DERIVATIONS.values(), *PLAIN_NUMBERS.values()]}
        expected |= {"z": want["z"], "percentile": want["percentile"]}
        expected |= dict(zip(("range_low", "range_high"), want["reference_range_ppb"], strict=True))
        shown = {k: round(v, REPORTED_DECIMALS.get(k, 1)) for k, v in expected.items()}
        assert numbers == pytest.approx(shown, abs=1e-9), (structure, side)  # to precision


def test_whole_brain_values_are_reported_beside_a_csf_reference(
    study: AssembledAcquisition, tmp_path: Path
) -> None:
    """2024 QSM consensus: values against the whole brain always, any other in addition."""
    record = make_record(study, reference="csf")
    path = save(build(study, record), tmp_path / "sr.dcm")
    assert validator_errors(path) == []
    ds = dcmread(path)
    against_csf = reported_numbers(ds, region="csf")
    against_brain = reported_numbers(ds, region="whole_brain")
    keys = {(s, side) for s in STRUCTURES for side in SIDE_CODES.values()}
    assert set(against_csf) == set(against_brain) == keys
    brain_mean = WHOLE_BRAIN_MEAN_PPB["csf"]
    for (structure, side), numbers in against_brain.items():
        mean = record_side(record, structure, side)["mean_ppb"]
        assert numbers == {"mean_ppb": pytest.approx(round(mean - brain_mean, 1), abs=1e-9)}
        assert against_csf[(structure, side)]["mean_ppb"] == pytest.approx(round(mean, 1))
    assert "whole-brain reference" in dsrdump(path, "+Pl").stdout


def test_whole_brain_reference_has_no_second_group(
    study: AssembledAcquisition, tmp_path: Path
) -> None:
    ds = dcmread(save(build(study, make_record(study)), tmp_path / "sr.dcm"))
    assert reported_numbers(ds, region="csf") == {}  # only groups stating no region or brain
    assert "whole-brain reference" not in str(ds.ContentSequence)


def test_baseline_sr_has_no_change_but_keeps_norms(
    study: AssembledAcquisition, tmp_path: Path
) -> None:
    record = make_record(study, follow_up=False)
    path = save(build(study, record), tmp_path / "sr.dcm")
    assert validator_errors(path) == []
    reported = reported_numbers(dcmread(path))
    for numbers in reported.values():
        assert not {"change_ppb", "change_pct", "annual_change_ppb_per_year"} & set(numbers)
        assert {"mean_ppb", "z", "range_low"} <= set(numbers)


def test_record_with_side_means_only(study: AssembledAcquisition) -> None:
    """Records from before per-side statistics still report each side's mean."""
    record = make_record(study)
    for name in STRUCTURES:
        del record["structures"][name]["sides"]
    reported = reported_numbers(build(study, record))
    left = reported[("putamen", "left")]
    assert left == {"mean_ppb": round(record["structures"]["putamen"]["left_ppb"], 1)}


def test_identity_study_and_references_come_from_the_source(study: AssembledAcquisition) -> None:
    sr = build(study, make_record(study))
    source = dcmread(study.reference_paths[0])
    for keyword in ("PatientID", "PatientName", "PatientBirthDate", "StudyInstanceUID"):
        assert sr.get(keyword) == source.get(keyword), keyword
    assert sr.AccessionNumber == source.AccessionNumber
    assert sr.SeriesInstanceUID not in study.series_uids
    assert sr.SeriesNumber == Settings().outputs.series_number_base
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence
    referenced = {str(s.SeriesInstanceUID) for s in evidence}
    assert referenced == {str(source.SeriesInstanceUID)}
    assert len(evidence[0].ReferencedSOPSequence) == len(study.reference_paths)


def test_same_record_gives_same_uids_new_version_new_ones(study: AssembledAcquisition) -> None:
    record = make_record(study)
    first, again = build(study, record), build(study, record)
    assert (first.SOPInstanceUID, first.SeriesInstanceUID) == (
        again.SOPInstanceUID,
        again.SeriesInstanceUID,
    )
    newer = build(study, {**record, "pipeline_version": "9.9.9"})
    assert newer.SOPInstanceUID != first.SOPInstanceUID


def test_bad_inputs_fail_with_one_reason(study: AssembledAcquisition) -> None:
    record = make_record(study)
    sources = read_sources(study.reference_paths)
    with pytest.raises(ValueError, match="study"):
        build_measurement_report(
            ProcessingRecord.from_json({**record, "study_uid": "1.2.3"}),
            sources,
            settings=Settings(),
        )
    with pytest.raises(ValueError, match="failure"):
        build_measurement_report(
            ProcessingRecord.from_json({**record, "error": "no phase"}),
            sources,
            settings=Settings(),
        )
    with pytest.raises(ValueError, match="no source images"):
        build_measurement_report(ProcessingRecord.from_json(record), [], settings=Settings())


def test_todays_pipeline_record_without_norms_or_risk(
    study: AssembledAcquisition, tmp_path: Path
) -> None:
    """The record as `monitor.measure.report_block` makes it before tracking: plain numbers."""
    record = make_record(study)
    plain = ("mean_ppb", "left_ppb", "right_ppb", "median_ppb", "sd_ppb", "volume_ml")
    for name in STRUCTURES:
        block = record["structures"][name]
        record["structures"][name] = {key: block[key] for key in plain}
    record["risk"] = None
    path = save(build(study, record), tmp_path / "sr.dcm")
    assert validator_errors(path) == []
    reported = reported_numbers(dcmread(path))
    thalamus = record["structures"]["thalamus"]
    assert reported[("thalamus", "bilateral")] == pytest.approx(
        {
            key: round(thalamus[key], REPORTED_DECIMALS[key])
            for key in ("mean_ppb", "median_ppb", "sd_ppb", "volume_ml")
        }
    )
    assert reported[("thalamus", "right")] == {"mean_ppb": round(thalamus["right_ppb"], 1)}
    assert "Brain iron progression risk" not in dsrdump(path).stdout


def test_risk_alone_when_segmentation_withheld_the_numbers(
    study: AssembledAcquisition, tmp_path: Path
) -> None:
    record = {**make_record(study, risk_level="indeterminate"), "structures": {}}
    path = save(build(study, record), tmp_path / "sr.dcm")
    assert validator_errors(path) == []
    assert reported_numbers(dcmread(path)) == {}
    assert "Indeterminate" in dsrdump(path).stdout
    with pytest.raises(ValueError, match="no structure measurements and no risk"):
        build(study, {**record, "risk": None})


def test_sr_carries_the_consensus_provenance(study: AssembledAcquisition, tmp_path: Path) -> None:
    """Field strength, echo times, voxel size, steps with version and the reference region,
    as TID 4019 algorithm parameters of every measurement group (issue 16)."""
    path = save(build(study, make_record(study)), tmp_path / "sr.dcm")
    assert validator_errors(path) == []
    text = dsrdump(path, "+Pl").stdout
    for expected in (
        "field strength 3.0 T",
        "echo times 4.00, 9.50, 15.00, 20.50, 26.00 ms",
        "voxel size 1.00 x 1.00 x 2.00 mm",
        "processing: ROMEO-style region-growing phase unwrapping, weighted multi-echo field "
        "fit, V-SHARP background removal, TV-ADMM dipole inversion",
        "software: qsm-monitor 0.1.0",
        "reference region: whole-brain mean",
    ):
        assert f'"Algorithm Parameters")="{expected}' in text, expected


def test_sr_names_the_visit_changes_are_computed_against(
    study: AssembledAcquisition, tmp_path: Path
) -> None:
    path = save(build(study, make_record(study)), tmp_path / "sr.dcm")
    text = dsrdump(path, "+Pl").stdout
    assert "Changes are computed against the previous visit of 2025-01-14 (study 1.2.3.4)" in text
    baseline = save(build(study, make_record(study, follow_up=False)), tmp_path / "b.dcm")
    assert "Changes are computed against" not in dsrdump(baseline, "+Pl").stdout


def test_side_groups_of_a_rolled_head_carry_the_left_right_caution(
    study: AssembledAcquisition, tmp_path: Path
) -> None:
    """A comment in each left and right group (not the bilateral ones), valid for dciodvfy."""
    record = make_record(study)
    record["qc"].setdefault("segmentation", {})["b0_tilt_deg"] = {
        "towards_left": 12.0,
        "towards_back": 0.0,
    }
    path = save(build(study, record), tmp_path / "sr.dcm")
    assert validator_errors(path) == []
    text = dsrdump(path, "+Pl").stdout
    caution = ProcessingRecord.from_json(record).qc.left_right_caution
    assert caution is not None
    assert text.count(f'TEXT:(,,"Comment")="{caution}"') == 8  # 4 structures x 2 sides
    record["qc"]["segmentation"]["b0_tilt_deg"]["towards_left"] = 3.0
    quiet = save(build(study, record), tmp_path / "quiet.dcm")
    assert "Left-right comparison" not in dsrdump(quiet, "+Pl").stdout
