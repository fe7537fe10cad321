"""Synthetic visits for tracking tests: measurement blocks shaped like `report_block`."""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from sqlalchemy.orm import sessionmaker

from monitor.db import make_engine
from monitor.segment.structures import SIDES, STRUCTURES
from monitor.tracking.fingerprint import ProtocolFingerprint
from monitor.tracking.history import VisitInput
from monitor.tracking.schema import history_sessions

FINGERPRINT = ProtocolFingerprint(
    field_strength_t=3.0,
    echo_times_ms=(4.0, 10.0, 16.0),
    voxel_mm=(1.0, 1.0, 2.0),
    reference_region="whole_brain",
    pipeline_version="0.1.0",
    vendor="SIEMENS",
    model="Prisma",
)
NORMAL_PPB = {"thalamus": -1.0, "caudate": 48.0, "putamen": 48.0, "globus_pallidus": 95.0}
"""Close to the default norms' medians at age ~45 (z near 0)."""


def report(values_ppb: Mapping[str, float]) -> dict[str, Any]:
    """A `report_block`-like structures block; both sides carry the bilateral value."""
    block: dict[str, Any] = {}
    for structure in STRUCTURES:
        value = values_ppb[structure]
        side = {
            "mean_ppb": value,
            "median_ppb": value,
            "sd_ppb": 10.0,
            "volume_ml": 4.0,
            "voxel_count": 500,
        }
        block[structure] = {
            **side,
            "left_ppb": value,
            "right_ppb": value,
            "volume_ml": 8.0,
            "voxel_count": 1000,
            "sides": {s: dict(side) for s in SIDES},
        }
    block["reference"] = "whole_brain"
    return block


def visit(
    study_date: str,
    values_ppb: Mapping[str, float] | None = None,
    *,
    patient_id: str = "P-1",
    birth_date: str = "19800101",
    sex: str = "F",
    fingerprint: ProtocolFingerprint = FINGERPRINT,
    **changes: Any,
) -> VisitInput:
    """One acquisition of one visit; study UID and key derive from patient and date."""
    uid = f"1.2.826.0.1.{zlib.crc32(f'{patient_id}/{study_date}'.encode())}"
    base = VisitInput(
        patient_id=patient_id,
        birth_date=birth_date,
        sex=sex,
        study_uid=uid,
        study_date=study_date,
        study_time="100000",
        idempotency_key=f"key-{uid}",
        fingerprint=fingerprint,
        structures=report(values_ppb or NORMAL_PPB),
        input_paths=(f"/spool/{uid}/a.dcm",),
    )
    return replace(base, **changes)


def shifted(**deltas_ppb: float) -> dict[str, float]:
    """The normal values with some structures moved by the given ppb."""
    return {name: value + deltas_ppb.get(name, 0.0) for name, value in NORMAL_PPB.items()}


def sessions_for(db_url: str) -> sessionmaker:
    return history_sessions(make_engine(db_url))
