"""One visit's assessment from its measurements and the patient's earlier visits (pure).

This is where the history meets the normative model (`monitor.norms`), the change arithmetic
(`monitor.tracking.change`) and the risk rules (`monitor.tracking.risk`). Only earlier visits
whose protocol fingerprints are compatible count; when earlier visits exist but none is
compatible, the visit is shown with its cross-sectional scores and marked not comparable with
the reason. The structures block it builds is the record's (notes/record_schema.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from monitor.norms import NormativeModel
from monitor.norms.model import score_record
from monitor.segment.structures import SIDES, STRUCTURES
from monitor.settings import Settings
from monitor.tracking.change import VisitValue, compute_change
from monitor.tracking.fingerprint import ProtocolFingerprint, incompatibility
from monitor.tracking.risk import DISCLAIMER, StructureEvidence, assess_risk
from monitor.tracking.trend import expected_course, trend_test

BILATERAL = "bilateral"
SIDE_STATS = ("mean_ppb", "median_ppb", "sd_ppb", "volume_ml", "voxel_count")

Stats = Mapping[str, float | int | None]
"""One structure side's statistics, keyed as `SIDE_STATS`."""


@dataclass(frozen=True)
class HistoryPoint:
    """What the assessment needs to know about one processed acquisition."""

    study_uid: str
    acquired_at: datetime | None
    fingerprint: ProtocolFingerprint
    stats: Mapping[tuple[str, str], Stats]
    """(structure, side) -> statistics, side in left/right/bilateral; empty when QC failed."""


@dataclass(frozen=True)
class Assessment:
    structures: dict[str, Any]
    risk: dict[str, Any]
    comparable: bool
    not_comparable_reason: str | None
    previous_study_uid: str | None
    baseline_study_uid: str | None


def assess_visit(  # noqa: PLR0913 - the visit, its history and how to judge them
    current: HistoryPoint,
    earlier: Sequence[HistoryPoint],
    model: NormativeModel,
    settings: Settings,
    *,
    age_years: float | None,
    sex: str | None,
    qc_failure: str | None = None,
    identity_problem: str | None = None,
) -> Assessment:
    """Scores, changes and the risk level of `current` given the patient's other visits.

    `earlier` may hold any of the patient's visits (later ones are ignored), so a back-filled
    visit is handled by re-assessing every visit after it with the same call.
    """
    compared, reason = (
        ([], f"identity needs review: {identity_problem}")
        if identity_problem
        else comparable_history(current, earlier, settings)
    )
    structures: dict[str, Any] = {}
    evidence: dict[str, StructureEvidence] = {}
    for structure in STRUCTURES:
        if (structure, BILATERAL) not in current.stats:
            continue
        block, bilateral_evidence = _structure_block(
            structure, current, compared, model, settings, age_years, sex
        )
        structures[structure] = block
        evidence[structure] = bilateral_evidence
    if structures:
        structures["reference"] = current.fingerprint.reference_region
    previous = max(compared, key=_when, default=None)
    baseline = min(compared, key=_when, default=None)
    if identity_problem:
        risk = {
            "level": "indeterminate",
            "reasons": [
                f"Identity needs review: {identity_problem}. This visit is held out of the "
                "patient's history until the identity is resolved; no risk call is made.",
                DISCLAIMER,
            ],
        }
    else:
        risk = assess_risk(
            evidence,
            settings.risk,
            qc_failures=[qc_failure] if qc_failure else [],
            not_comparable_reason=reason,
            age_years=age_years,
        ).as_record()
    return Assessment(
        structures=structures,
        risk=risk,
        comparable=reason is None,
        not_comparable_reason=reason,
        previous_study_uid=None if previous is None else previous.study_uid,
        baseline_study_uid=None if baseline is None else baseline.study_uid,
    )


def comparable_history(
    current: HistoryPoint, others: Sequence[HistoryPoint], settings: Settings
) -> tuple[list[HistoryPoint], str | None]:
    """Earlier measured visits compatible with `current`, and why none is when some exist."""
    if current.acquired_at is None:
        return [], "the study has no date, so it cannot be placed in the patient's timeline"
    earlier = [
        p
        for p in others
        if p.stats
        and p.acquired_at is not None
        and p.acquired_at < current.acquired_at
        and p.study_uid != current.study_uid
    ]
    reasons = {
        p.study_uid: incompatibility(p.fingerprint, current.fingerprint, settings.tracking)
        for p in earlier
    }
    compared = [p for p in earlier if reasons[p.study_uid] is None]
    if earlier and not compared:
        latest = max(earlier, key=_when)
        return [], f"{reasons[latest.study_uid]} at the previous visit"
    return compared, None


def _structure_block(  # noqa: PLR0913
    structure: str,
    current: HistoryPoint,
    compared: Sequence[HistoryPoint],
    model: NormativeModel,
    settings: Settings,
    age_years: float | None,
    sex: str | None,
) -> tuple[dict[str, Any], StructureEvidence]:
    """The record block of one structure (bilateral fields plus "sides") and its evidence."""
    factor = settings.risk.reliable_change_factor

    def judged(side: str) -> tuple[dict[str, Any], StructureEvidence]:
        retest_sd = (
            settings.risk.retest_sd_ppb[structure]
            if side == BILATERAL
            else settings.risk.side_retest_sd(structure)
        )
        stats = current.stats.get((structure, side), {})
        value = stats.get("mean_ppb")
        score = (
            model.score(structure, side, value, age_years, sex)
            if model.reference_region == current.fingerprint.reference_region
            else None  # norms of another reference region would give meaningless z-scores
        )
        earlier = [v for p in compared if (v := _visit_value(p, structure, side)) is not None]
        now = VisitValue(current.study_uid, current.acquired_at or datetime.min, _nan(value))
        change = compute_change(earlier, now, retest_sd, factor)
        fields = {
            **score_record(score),
            **change.as_record(),
        }
        has_change = change.change_ppb is not None
        curve = None if score is None else model.curve(structure, side)
        trend = trend_test(
            earlier,
            now,
            retest_sd,
            None
            if curve is None or age_years is None
            else expected_course(curve, age_years, sex, now),
        )
        return fields, StructureEvidence(value, score, change if has_change else None, trend)

    bilateral_fields, evidence = judged(BILATERAL)
    bilateral = current.stats[(structure, BILATERAL)]
    block: dict[str, Any] = {
        "mean_ppb": bilateral.get("mean_ppb"),
        **{
            f"{side}_ppb": current.stats.get((structure, side), {}).get("mean_ppb")
            for side in SIDES
        },
        "median_ppb": bilateral.get("median_ppb"),
        "sd_ppb": bilateral.get("sd_ppb"),
        "volume_ml": bilateral.get("volume_ml"),
        "voxel_count": bilateral.get("voxel_count"),
        **bilateral_fields,
        "sides": {
            side: {
                **{k: current.stats.get((structure, side), {}).get(k) for k in SIDE_STATS},
                **judged(side)[0],
            }
            for side in SIDES
        },
    }
    return block, evidence


def _visit_value(point: HistoryPoint, structure: str, side: str) -> VisitValue | None:
    value = point.stats.get((structure, side), {}).get("mean_ppb")
    if value is None or point.acquired_at is None:
        return None
    return VisitValue(point.study_uid, point.acquired_at, float(value))


def _nan(value: float | int | None) -> float:
    return float("nan") if value is None else float(value)


def _when(point: HistoryPoint) -> datetime:
    return point.acquired_at or datetime.min
