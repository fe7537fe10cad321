"""The emit step: outputs written under fixed names, identical on a re-run, alert only when
elevated, and an output that cannot exist for a record left out with its reason."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from support.images import red_pixel_count
from support.outputs_support import assembled_study, make_record

from dicom_node.assemble.study import AssembledAcquisition
from dicom_node.logs import uid_hash
from dicom_node.outputs.emit import EmitInput, Emitted, emit_outputs
from monitor.record import ProcessingRecord
from monitor.settings import DICOM_OUTPUTS, Settings, load_settings
from monitor.types import QSMResult


@pytest.fixture(scope="module")
def assembled(tmp_path_factory: pytest.TempPathFactory) -> AssembledAcquisition:
    return assembled_study(tmp_path_factory.mktemp("study"))


def emit_input(
    assembled: AssembledAcquisition, with_labels: bool = True, **record_fields: object
) -> EmitInput:
    acq = assembled.acquisition
    shape = acq.magnitude.shape[:3]
    rng = np.random.default_rng(3)
    labels = np.zeros(shape, dtype=np.int16)
    labels[8:14, 6:12, 2:6] = 1
    labels[18:24, 6:12, 2:6] = 2
    qsm = QSMResult(
        chi_ppm=rng.normal(0.0, 0.05, shape).astype(np.float32),
        mask=np.ones(shape, dtype=bool),
        local_field_ppm=np.zeros(shape),
        total_field_ppm=np.zeros(shape),
        affine_ras=acq.affine_ras,
        voxel_mm=acq.voxel_mm,
        reference="whole_brain",
    )
    record = {**make_record(assembled), **record_fields}
    shown = labels if with_labels else None
    return EmitInput(
        ProcessingRecord.from_json(record),
        assembled.reference_paths,
        qsm,
        acq.magnitude[..., 0],
        shown,
    )


def settings_in(tmp_path: Path) -> Settings:
    """A data directory of the test's own: the trend plot reads the history database there."""
    return load_settings(None, storage={"data_dir": tmp_path / "data"})


def run(inputs: EmitInput, out_dir: Path, settings: Settings) -> Emitted:
    return emit_outputs(inputs, out_dir, settings)


def sop_uids(path: Path) -> list[str]:
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    return [dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in files]


@pytest.mark.slow
def test_rerun_gives_identical_objects_and_uids(
    tmp_path: Path, assembled: AssembledAcquisition
) -> None:
    settings = settings_in(tmp_path)
    inputs = emit_input(assembled)
    first = run(inputs, tmp_path / "a", settings)
    second = run(inputs, tmp_path / "b", settings)
    no_history = "the patient's history has no values to plot"  # trend: see test_delivery_serve
    assert first.skipped == {
        "trend_plot_png": no_history,
        "trend_plot": "no trend_plot PNG was drawn",
    }
    made = {*DICOM_OUTPUTS, "key_image_segmentation_png", "fhir_bundle", "alert",
            "report_page_png", "report_page_pdf"}  # fmt: skip
    assert set(first.outputs) == made - {"trend_plot"}
    assert all(path.parent == tmp_path / "a" for path in first.outputs.values())
    for name in ("fhir_bundle", "alert", "key_image_segmentation_png", "report_page_pdf"):
        assert first.outputs[name].read_bytes() == second.outputs[name].read_bytes(), name
    for name in set(DICOM_OUTPUTS) & set(first.outputs):
        # creation times differ between runs; a PACS keeps one copy per SOP Instance UID
        assert sop_uids(first.outputs[name]) == sop_uids(second.outputs[name]), name
    slices = sorted(first.outputs["qsm_mr_series"].iterdir())
    assert len(slices) == assembled.acquisition.magnitude.shape[2]
    sr = dcmread(first.outputs["sr"])
    assert sr.StudyInstanceUID == assembled.study_uid
    (parametric_map,) = sop_uids(first.outputs["qsm_parametric_map"])
    assert parametric_map in {
        item.ReferencedSOPInstanceUID
        for study in sr.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for item in series.ReferencedSOPSequence
    }
    assert not [p for p in (tmp_path / "a").rglob("*") if p.name.startswith(".")]


def test_alert_carries_no_identity_and_only_exists_when_elevated(
    tmp_path: Path, assembled: AssembledAcquisition
) -> None:
    settings = settings_in(tmp_path)
    elevated = run(emit_input(assembled, with_labels=False), tmp_path, settings)
    alert_text = elevated.outputs["alert"].read_text()
    alert = json.loads(alert_text)
    record = make_record(assembled)
    assert alert["level"] == "elevated"
    assert alert["reasons"] == record["risk"]["reasons"]
    assert alert["study_ref"] == uid_hash(assembled.study_uid)
    for identifying in (record["patient_id"], record["study_uid"], record["study_date"]):
        assert identifying not in alert_text

    calm = emit_input(
        assembled, with_labels=False, risk={"level": "not elevated", "reasons": ["within norms"]}
    )
    again = run(calm, tmp_path, settings)
    assert "alert" not in again.outputs
    assert again.skipped["alert"] == "risk is not elevated"
    assert not (tmp_path / "alert.json").exists()  # the earlier alert is not left behind


def test_record_without_measurements_skips_sr_and_bundle_with_reasons(
    tmp_path: Path, assembled: AssembledAcquisition
) -> None:
    empty = emit_input(assembled, structures={}, risk=None)
    emitted = run(empty, tmp_path, settings_in(tmp_path))
    assert set(emitted.outputs) == {
        "qsm_parametric_map", "qsm_mr_series", "key_image_segmentation_png",
        "key_image_segmentation",
    }  # fmt: skip
    assert set(emitted.skipped) == {
        "sr", "fhir_bundle", "alert", "trend_plot_png", "trend_plot",
        "report_page_png", "report_page_pdf", "report_page", "report_pdf",
    }  # fmt: skip
    assert emitted.skipped["report_page_png"] == "no values and no risk to report"
    assert "no structure measurements" in emitted.skipped["sr"]
    assert "no structure measurements" in emitted.skipped["fhir_bundle"]


def test_a_visit_whose_qc_failed_gets_a_key_image_that_says_so(
    tmp_path: Path, assembled: AssembledAcquisition
) -> None:
    """A key image queued for the PACS must never look like a valid result."""
    qc = {"segmentation": {"method": "atlas", "reportable": False, "reason": "thalamus 31 ml"}}
    failed = run(
        emit_input(assembled, structures={}, risk=None, qc=qc),
        tmp_path / "f",
        settings_in(tmp_path),
    )
    passed = run(emit_input(assembled), tmp_path / "p", settings_in(tmp_path))

    png = "key_image_segmentation_png"
    assert red_pixel_count(failed.outputs[png]) > 20 * max(
        red_pixel_count(passed.outputs[png]), 100
    )
