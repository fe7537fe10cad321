"""Shared pieces of the DICOM output tests: a synthetic study, records, the real validators."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from dicom_node.assemble.study import AssembledAcquisition, assemble_study
from dicom_node.synthetic.series import write_acquisition_series
from support.node_acquisitions import small_acquisition
from support.provenance_rows import PROVENANCE

DCIODVFY = "/usr/bin/dciodvfy"
DSRDUMP = "/usr/bin/dsrdump"
STRUCTURES = ("thalamus", "caudate", "putamen", "globus_pallidus")
WHOLE_BRAIN_MEAN_PPB = {"whole_brain": 0.0, "csf": -17.26}
"""The brain's mean on the reported scale, as the measurement step records it."""


def assembled_study(folder: Path, style: str = "siemens") -> AssembledAcquisition:
    """A small oblique, non-square acquisition written as vendor DICOM and assembled back."""
    paths = write_acquisition_series(small_acquisition(), folder, style)
    report = assemble_study(paths)
    assert report.rejected == [] and len(report.acquisitions) == 1
    return report.acquisitions[0]


def _side(rng: np.random.Generator, follow_up: bool) -> dict[str, Any]:
    mean = float(rng.uniform(20.0, 160.0))
    low = float(rng.uniform(10.0, 40.0))
    return {
        "mean_ppb": mean,
        "median_ppb": mean + float(rng.uniform(-5.0, 5.0)),
        "sd_ppb": float(rng.uniform(5.0, 30.0)),
        "volume_ml": float(rng.uniform(1.0, 8.0)),
        "voxel_count": int(rng.integers(1000, 8000)),
        "z": float(rng.normal()),
        "percentile": float(rng.uniform(1.0, 99.0)),
        "reference_range_ppb": [low, low + 90.0],
        "interpretation": str(rng.choice(["L", "N", "H"])),
        "change_ppb": float(rng.normal(0.0, 5.0)) if follow_up else None,
        "change_pct": float(rng.normal(0.0, 5.0)) if follow_up else None,
        "annual_change_ppb_per_year": float(rng.normal(0.0, 4.0)) if follow_up else None,
        "reliable_change": bool(rng.integers(0, 2)) if follow_up else None,
    }


def make_record(
    assembled: AssembledAcquisition,
    *,
    follow_up: bool = True,
    risk_level: str = "elevated",
    reference: str = "whole_brain",
) -> dict[str, Any]:
    """A record in the agreed schema (record_schema.md) with random but plausible numbers."""
    rng = np.random.default_rng(11 if follow_up else 12)
    structures: dict[str, Any] = {}
    for name in STRUCTURES:
        sides = {side: _side(rng, follow_up) for side in ("left", "right")}
        structures[name] = {
            **_side(rng, follow_up),
            "left_ppb": sides["left"]["mean_ppb"],
            "right_ppb": sides["right"]["mean_ppb"],
            "sides": sides,
        }
    structures["reference"] = reference
    return {
        "idempotency_key": assembled.idempotency_key,
        "patient_id": assembled.source.patient_id,
        "study_uid": assembled.study_uid,
        "study_date": assembled.source.study_date,
        "series_uids": list(assembled.series_uids),
        "structures": structures,
        "risk": {"level": risk_level, "reasons": ["putamen above the normal range", "rising"]},
        "previous_study_uid": "1.2.3.4" if follow_up else None,
        "previous_study_date": "2025-01-14" if follow_up else None,
        "reference_region": reference,
        "pipeline_version": "0.1.0",
        "outputs": {},
        "qc": {"provenance": PROVENANCE, "whole_brain_mean_ppb": WHOLE_BRAIN_MEAN_PPB[reference]},
        "error": None,
    }


def validator_errors(path: Path) -> list[str]:
    """dciodvfy's "Error" lines (warnings, e.g. our private coding scheme, are allowed)."""
    run = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, check=False)
    return [line for line in (run.stdout + run.stderr).splitlines() if "Error" in line]


def dsrdump(path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """DCMTK's dsrdump of `path` (e.g. option "+Pl": long text values in full)."""
    return subprocess.run(
        [DSRDUMP, *options, str(path)], capture_output=True, text=True, check=False
    )


def save(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def walk(items: Any) -> Iterator[Dataset]:
    """Every SR content item below `items`, depth first."""
    for item in items:
        yield item
        yield from walk(item.get("ContentSequence", []))


FINDING_SITE = "363698007"
LATERALITY = "272741003"
DERIVATION = "121401"
SITE_CODES = {"42695009": "thalamus", "11000004": "caudate", "89278009": "putamen"}
SITE_CODES["14738005"] = "globus_pallidus"
SIDE_CODES = {"7771000": "left", "24028007": "right", "51440002": "bilateral"}
DERIVATIONS = {"373098007": "mean_ppb", "373099004": "median_ppb", "386136009": "sd_ppb"}
PLAIN_NUMBERS = {
    "118565006": "volume_ml",
    "CHI-CHANGE": "change_ppb",
    "CHI-CHANGE-PCT": "change_pct",
    "CHI-RATE": "annual_change_ppb_per_year",
}
PROPERTIES = {
    "121416": "z",
    "121415": "percentile",
    "385524004": "range_low",
    "371933006": "range_high",
}


def code(item: Dataset, keyword: str) -> str:
    return str(getattr(item, keyword)[0].CodeValue)


REFERENCE_REGION = "C94970"
REGION_CODES = {"whole_brain": "12738006", "csf": "65216001"}


def group_region(children: list[Dataset]) -> str | None:
    """The group's Reference Region ("whole_brain"/"csf"), None when it states none."""
    names = {value: name for name, value in REGION_CODES.items()}
    for item in children:
        if item.ValueType == "CODE" and code(item, "ConceptNameCodeSequence") == REFERENCE_REGION:
            return names[code(item, "ConceptCodeSequence")]
    return None


def reported_numbers(
    ds: Dataset, region: str = "whole_brain"
) -> dict[tuple[str, str], dict[str, float]]:
    """(structure, side) -> every number in its group with Reference Region `region`, read back
    independently of highdicom."""
    groups: dict[tuple[str, str], dict[str, float]] = {}
    for group in walk(ds.ContentSequence):
        if group.ValueType != "CONTAINER" or code(group, "ConceptNameCodeSequence") != "125007":
            continue
        children = list(group.ContentSequence)
        if group_region(children) not in (region, None):
            continue
        sites = [i for i in children if code(i, "ConceptNameCodeSequence") == FINDING_SITE]
        if not sites:
            continue
        laterality = next(
            i for i in sites[0].ContentSequence if code(i, "ConceptNameCodeSequence") == LATERALITY
        )
        key = (
            SITE_CODES[code(sites[0], "ConceptCodeSequence")],
            SIDE_CODES[code(laterality, "ConceptCodeSequence")],
        )
        numbers: dict[str, float] = {}
        for item in children:
            if item.ValueType != "NUM":
                continue
            value = float(item.MeasuredValueSequence[0].NumericValue)
            name = code(item, "ConceptNameCodeSequence")
            modifiers = {
                code(m, "ConceptNameCodeSequence"): m for m in item.get("ContentSequence", [])
            }
            if name == "126396":
                numbers[DERIVATIONS[code(modifiers[DERIVATION], "ConceptCodeSequence")]] = value
                for concept, field in PROPERTIES.items():
                    if concept in modifiers:
                        numbers[field] = float(
                            modifiers[concept].MeasuredValueSequence[0].NumericValue
                        )
            else:
                numbers[PLAIN_NUMBERS[name]] = value
        assert key not in groups, f"two groups for {key} against {region}"
        groups[key] = numbers
    return groups


def record_side(record: dict[str, Any], structure: str, side: str) -> dict[str, Any]:
    block = record["structures"][structure]
    return block if side == "bilateral" else block["sides"][side]
