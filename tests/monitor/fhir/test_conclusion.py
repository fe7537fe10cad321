"""The DiagnosticReport conclusion an EHR user reads first: whole sentences, each ended once,
one disclaimer, values at their precision, and "not reportable" with its reason when QC
withheld everything (it once read "picture.. Decision", ").;" and "+0 ppb")."""

from __future__ import annotations

import copy
import re

from support.fhir_records import baseline_record, elevated_record

from monitor.fhir.report import DISCLAIMER, conclusion
from monitor.record import ProcessingRecord
from monitor.tracking.risk import DISCLAIMER as RISK_DISCLAIMER


def _text(record: dict) -> str:
    return conclusion(ProcessingRecord.from_json(record))


def _well_punctuated(text: str) -> None:
    assert not re.search(r"\.\s*\.|\.;|;\s*\.|\s{2}", text), text
    assert text.endswith(".")
    assert text.count("not a diagnosis") == 1, text


def test_every_kind_of_record_reads_as_clean_sentences() -> None:
    failed = copy.deepcopy(baseline_record())
    failed["structures"] = {"reference": "whole_brain"}
    failed["qc"] = {"segmentation": {"reportable": False, "reason": "every structure withheld"}}
    failed["risk"] = {
        "level": "indeterminate",
        "reasons": [
            "Quality control failed: every structure withheld.",
            "No risk call is made.",
            RISK_DISCLAIMER,
        ],
    }
    for record in (baseline_record(), elevated_record(), failed):
        _well_punctuated(_text(record))


def test_values_are_shown_to_their_precision_and_no_change_is_said_in_words() -> None:
    record = elevated_record()
    record["structures"]["thalamus"]["mean_ppb"] = 14.0371
    record["structures"]["thalamus"]["z"] = 0.123456
    record["structures"]["caudate"]["change_ppb"] = 0.03
    text = _text(record)
    assert "Thalamus 14.0 ppb; z +0.12" in text
    caudate = "Caudate 63.0 ppb; z -0.10, within the normative range; unchanged since the previous"
    assert caudate in text
    assert "+0.0 ppb" not in text and "+0 ppb" not in text


def test_a_record_with_nothing_measured_says_not_reportable_and_why() -> None:
    record = copy.deepcopy(baseline_record())
    record["structures"] = {"reference": "whole_brain"}
    record["qc"] = {
        "segmentation": {
            "reportable": False,
            "reason": "registration failed: template similarity 1.02 below 1.10",
        }
    }
    text = _text(record)
    assert "Not reportable: registration failed: template similarity 1.02 below 1.10." in text
    assert text.endswith(DISCLAIMER)
