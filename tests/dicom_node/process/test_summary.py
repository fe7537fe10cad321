"""What `process` prints per study, and when a study counts as reportable."""

from dicom_node.process.summary import is_reportable, record_summary

WITHHELD_ALL = {
    "study_uid": "1.2.3",
    "error": None,
    "structures": {},
    "qc": {
        "segmentation": {
            "reportable": False,
            "reason": "every structure withheld; "
            "thalamus_left withheld: volume 40.00 ml outside plausible",
        }
    },
    "outputs": {"sr": "/data/out/sr.dcm"},
}
ONE_WITHHELD = {
    "study_uid": "1.2.4",
    "error": None,
    "risk": {"level": "not elevated"},
    "structures": {
        "reference": "whole_brain",
        "thalamus": {"sides": {"left": {"mean_ppb": -12.3456}, "right": {"mean_ppb": -10.0}}},
        "putamen": {"sides": {"right": {"mean_ppb": 40.04}}},
    },
    "qc": {
        "segmentation": {
            "reportable": True,
            "reason": "putamen_left withheld: coverage",
            "withheld": {"putamen_left": "coverage 0.52 below 0.9"},
        }
    },
    "outputs": {},
}


def test_a_study_with_every_structure_withheld_says_so_and_is_not_reportable():
    assert not is_reportable(WITHHELD_ALL)
    lines = record_summary(WITHHELD_ALL)
    assert lines[0].startswith("1.2.3: NOT REPORTABLE: every structure withheld")
    assert lines[-1] == "  outputs: /data/out/sr.dcm"


def test_values_are_printed_per_side_to_01_ppb_with_the_withheld_reason():
    assert is_reportable(ONE_WITHHELD)
    lines = record_summary(ONE_WITHHELD)
    assert lines[0] == "1.2.4: risk not elevated"
    assert lines[1] == "  values against the whole-brain mean"
    assert "  thalamus: left -12.3 ppb, right -10.0 ppb" in lines
    assert "  putamen: left withheld (coverage 0.52 below 0.9), right 40.0 ppb" in lines


def test_an_error_is_one_line_and_not_reportable():
    record = {"study_uid": "1.2.5", "error": "no QSM acquisition found: no phase images"}
    assert not is_reportable(record)
    assert record_summary(record) == ["1.2.5: no QSM acquisition found: no phase images"]


def test_csf_referenced_values_are_printed_with_their_whole_brain_values():
    record = {
        **ONE_WITHHELD,
        "structures": {**ONE_WITHHELD["structures"], "reference": "csf"},
        "qc": {**ONE_WITHHELD["qc"], "whole_brain_mean_ppb": -20.0},
    }
    lines = record_summary(record)
    assert lines[1] == "  values against the lateral ventricle CSF mean"
    assert "  thalamus: left -12.3 ppb (7.7 vs brain), right -10.0 ppb (10.0 vs brain)" in lines
