"""Per-side values carry a caution when the head lay rolled against B0 (docs/segmentation.md:
the map's left-right difference follows that roll; both sides together do not)."""

from __future__ import annotations

import pytest
from support.fhir_records import baseline_record, bundle_of

from dicom_node.process.summary import record_summary
from monitor.record import Qc
from monitor.settings import FhirSettings


def _qc(towards_left: float | None) -> dict:
    tilt = None if towards_left is None else {"towards_left": towards_left, "towards_back": 3.0}
    return {"segmentation": {"method": "atlas", "reportable": True, "b0_tilt_deg": tilt}}


@pytest.mark.parametrize("roll", [None, 0.0, 9.0, -9.0])
def test_no_caution_below_ten_degrees_or_without_a_recorded_tilt(roll: float | None) -> None:
    assert Qc(_qc(roll)).left_right_caution is None


@pytest.mark.parametrize(("roll", "towards", "shift"), [(10.0, "left", 13), (-17.0, "right", 22)])
def test_caution_names_the_roll_its_side_and_the_expected_shift(
    roll: float, towards: str, shift: int
) -> None:
    caution = Qc(_qc(roll)).left_right_caution
    assert caution is not None
    assert f"rolled {abs(roll):.0f} degrees (B0 towards its {towards})" in caution
    assert f"by up to about {shift} ppb" in caution
    assert "both sides together are not affected" in caution


def test_fhir_notes_it_on_side_values_only_and_the_summary_prints_it() -> None:
    record = baseline_record()
    record["qc"] = {**record["qc"], **_qc(14.0)}
    caution = Qc(record["qc"]).left_right_caution
    bundle = bundle_of(record, FhirSettings(timezone="Europe/Berlin"))
    observations = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"
    ]
    noted = {
        o["code"]["coding"][0]["code"]: caution in [n["text"] for n in o.get("note", [])]
        for o in observations
    }
    sides = [flag for code, flag in noted.items() if code.endswith(("-left", "-right"))]
    both = [flag for code, flag in noted.items() if not code.endswith(("-left", "-right"))]
    assert len(sides) == 8 and all(sides)
    assert len(both) == 4 and not any(both)
    assert f"  {caution}" in record_summary(record)
    record["qc"] = {**record["qc"], **_qc(4.0)}
    assert not any(line.strip().startswith("Left-right") for line in record_summary(record))


def test_after_the_geometry_correction_the_caution_says_so() -> None:
    qc = _qc(12.0)
    assert "before the geometry correction" not in (Qc(qc).left_right_caution or "")
    qc["segmentation"]["geometry_error_removed_ppb"] = {"thalamus_left": 3.1}
    assert "before the geometry correction, which takes much of it off" in (
        Qc(qc).left_right_caution or ""
    )
