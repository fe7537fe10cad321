"""Processing records in the agreed shape (notes/record_schema.md) for the FHIR tests."""

from __future__ import annotations

import copy
from typing import Any

from monitor.fhir.bundle import PatientRef, build_bundle
from monitor.record import ProcessingRecord
from monitor.settings import FhirSettings
from support.provenance_rows import PROVENANCE

_MEANS_PPB = {"thalamus": 14.0, "caudate": 62.0, "putamen": 71.0, "globus_pallidus": 138.0}


def _values(mean_ppb: float, z: float, change_ppb: float | None) -> dict[str, Any]:
    sd_ppb = 12.0
    follow_up = change_ppb is not None
    return {
        "mean_ppb": mean_ppb,
        "median_ppb": mean_ppb - 1.5,
        "sd_ppb": 20.0,
        "volume_ml": 3.1,
        "voxel_count": 4100,
        "z": z,
        "percentile": 50.0 + 34.0 * z,
        "reference_range_ppb": [mean_ppb - z * sd_ppb - 2 * sd_ppb, mean_ppb - z * sd_ppb + 24.0],
        "interpretation": "H" if z > 2 else ("L" if z < -2 else "N"),
        "change_ppb": change_ppb,
        "change_pct": None if not follow_up else 100.0 * change_ppb / (mean_ppb - change_ppb),
        "annual_change_ppb_per_year": None if not follow_up else change_ppb / 1.5,
        "reliable_change": None if not follow_up else abs(change_ppb) > 6.7,
    }


def baseline_record() -> dict[str, Any]:
    """A first visit: norms known, no change fields, risk not elevated."""
    structures: dict[str, Any] = {"reference": "whole_brain"}
    for index, (name, mean) in enumerate(_MEANS_PPB.items()):
        z = 0.2 * index - 0.3
        block = _values(mean, z, None)
        block["left_ppb"], block["right_ppb"] = mean - 1.0, mean + 1.0
        block["sides"] = {
            "left": _values(mean - 1.0, z - 0.1, None),
            "right": _values(mean + 1.0, z + 0.1, None),
        }
        structures[name] = block
    return {
        "idempotency_key": "9f" * 32,
        "patient_id": "PAT-0042",
        "study_uid": "1.2.826.0.1.3680043.8.498.1234567890",
        "study_date": "20240305",
        "study_datetime": "2024-03-05T09:41:07",
        "series_uids": ["1.2.826.0.1.3680043.8.498.11", "1.2.826.0.1.3680043.8.498.12"],
        "structures": structures,
        "risk": {"level": "not elevated", "reasons": ["all deep grey matter within norms"]},
        "previous_study_uid": None,
        "baseline_study_uid": None,
        "previous_study_date": None,
        "baseline_study_date": None,
        "birth_date": "1960-11-23",
        "comparable": True,
        "not_comparable_reason": None,
        "age_years": 63.4,
        "sex": "F",
        "reference_region": "whole_brain",
        "pipeline_version": "0.1.0",
        "norms": {"name": "literature-3T-2024", "source": "default"},
        "outputs": {},
        "qc": {"provenance": PROVENANCE},
        "error": None,
    }


def elevated_record() -> dict[str, Any]:
    """A follow-up with a reliable rise in the globus pallidus: risk elevated."""
    record = copy.deepcopy(baseline_record())
    record.update(
        idempotency_key="3c" * 32,
        study_uid="1.2.826.0.1.3680043.8.498.1234567999",
        study_date="20250910",
        study_datetime="2025-09-10T14:02:55+02:00",
        previous_study_uid="1.2.826.0.1.3680043.8.498.1234567890",
        baseline_study_uid="1.2.826.0.1.3680043.8.498.1234567890",
        previous_study_date="2024-03-05",
        baseline_study_date="2024-03-05",
        risk={
            "level": "elevated",
            "reasons": [
                "globus pallidus z = +2.6 (above the normative range)",
                "globus pallidus rose 21 ppb since the previous visit (reliable change)",
            ],
        },
    )
    for name, block in record["structures"].items():
        if not isinstance(block, dict):
            continue
        change = 21.0 if name == "globus_pallidus" else 1.0
        z = 2.6 if name == "globus_pallidus" else block["z"]
        fresh = _values(block["mean_ppb"] + change, z, change)
        sides = {
            side: _values(values["mean_ppb"] + change, z, change)
            for side, values in block["sides"].items()
        }
        block.update(fresh, sides=sides)
    return record


def amended_record() -> dict[str, Any]:
    """The elevated follow-up re-assessed after an earlier exam arrived late: the rise is now
    measured against that exam, smaller and not reliable, so the risk is no longer elevated."""
    record = copy.deepcopy(elevated_record())
    record.update(
        amendment=1,
        superseded_risk_level="elevated",
        previous_study_uid="1.2.826.0.1.3680043.8.498.1234567950",
        risk={"level": "not elevated", "reasons": []},
    )
    for block in record["structures"].values():
        if isinstance(block, dict):
            for values in (block, *block["sides"].values()):
                values.update(change_ppb=2.0, reliable_change=False)
    return record


def bundle_of(record: dict[str, Any], settings: FhirSettings) -> dict[str, Any]:
    """The Bundle of a record given in its stored JSON layout (typed once, as the node does)."""
    typed = ProcessingRecord.from_json(record)
    return build_bundle(typed, PatientRef.from_record(typed, settings), settings)
