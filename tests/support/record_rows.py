"""A results-table row exactly as `ProcessingResult.to_record()` wrote it before the record was
typed (a dict straight from the tracking step), for the loading and layout tests."""

from __future__ import annotations

import copy
from typing import Any

_SCORE = {"z": 1.234, "percentile": 89.13, "reference_range_ppb": [40.5, 120.25]}
_CHANGE = {
    "change_ppb": 3.5,
    "change_pct": 4.2,
    "change_from_baseline_ppb": 6.0,
    "change_from_baseline_pct": 7.5,
    "annual_change_ppb_per_year": 2.1,
    "reliable_change": False,
    "reliable_change_from_baseline": True,
}


def _side(mean_ppb: float) -> dict[str, Any]:
    return {
        "mean_ppb": mean_ppb,
        "median_ppb": mean_ppb - 1.0,
        "sd_ppb": 14.5,
        "volume_ml": 2.75,
        "voxel_count": 3100,
        **_SCORE,
        "interpretation": "N",
        **_CHANGE,
    }


def _block(mean_ppb: float) -> dict[str, Any]:
    """Bilateral fields, side means, scores, changes, then "sides" (tracking's key order)."""
    return {
        "mean_ppb": mean_ppb,
        "left_ppb": mean_ppb - 2.0,
        "right_ppb": mean_ppb + 2.0,
        "median_ppb": mean_ppb - 1.0,
        "sd_ppb": 14.5,
        "volume_ml": 5.5,
        "voxel_count": 6200,
        **_SCORE,
        "interpretation": "N",
        **_CHANGE,
        "sides": {"left": _side(mean_ppb - 2.0), "right": _side(mean_ppb + 2.0)},
    }


def old_row() -> dict[str, Any]:
    """A tracked, reported visit in the pre-typed layout (key order as it was written; the
    comparison dates and birth date were added later, in their tracking order)."""
    return copy.deepcopy(
        {
            "idempotency_key": "ab" * 32,
            "patient_id": "PAT-0042",
            "study_uid": "1.2.826.0.1.3680043.8.498.77",
            "study_date": "20250910",
            "series_uids": ["1.2.826.0.1.3680043.8.498.78", "1.2.826.0.1.3680043.8.498.79"],
            "structures": {
                "caudate": _block(62.0),
                "putamen": _block(71.0),
                "reference": "whole_brain",
            },
            "risk": {"level": "normal", "reasons": ["no reliable change", "decision support"]},
            "previous_study_uid": "1.2.826.0.1.3680043.8.498.70",
            "baseline_study_uid": "1.2.826.0.1.3680043.8.498.60",
            "previous_study_date": "2024-09-02",
            "baseline_study_date": "2023-08-28",
            "birth_date": "1962-04-17",
            "comparable": True,
            "not_comparable_reason": None,
            "age_years": 63.4,
            "sex": "F",
            "study_datetime": "2025-09-10T14:02:55",
            "reference_region": "whole_brain",
            "pipeline_version": "0.1.0",
            "norms": {"name": "literature-3T-2024", "source": "default"},
            "identity_status": "confirmed",
            "reassessed_study_uids": [],
            "outputs": {"sr": "/data/outputs/x/sr.dcm"},
            "qc": {
                "mask_fraction": 0.4,
                "segmentation": {"method": "atlas", "reportable": True, "reason": None},
                "emit": {"skipped": {"alert": "risk is not elevated"}},
            },
            "error": None,
        }
    )
