"""The tracking assessment applied to a values table without images (`qsm-monitor assess`).

Researchers want the rules on values from other pipelines. This builds the same history
points the pipeline's tracking step builds from its database (`history.reassess_patient`) and
calls the same `assess_visit` for every visit with all of the subject's visits, so scores,
changes, the trend test and the risk level come from one implementation. Visits are
comparable when their ``protocol`` labels match; the values are taken to be in the normative
model's reference region.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from monitor.norms import NormativeModel
from monitor.settings import Settings
from monitor.tracking.assess import SIDE_STATS, Assessment, HistoryPoint, assess_visit
from monitor.tracking.fingerprint import ProtocolFingerprint
from monitor.tracking.identity import age_years
from monitor.tracking.values_csv import MeasuredValue, ValuesError

__all__ = ["AssessedVisit", "assess_values"]

EXTERNAL_PIPELINE = "external"
_T = TypeVar("_T")


@dataclass(frozen=True)
class AssessedVisit:
    subject_id: str
    visit_at: datetime
    protocol: str
    age_years: float | None
    sex: str | None
    assessment: Assessment

    def as_json(self) -> dict[str, Any]:
        a = self.assessment
        return {
            "subject_id": self.subject_id,
            "visit_date": self.visit_at.isoformat(),
            "protocol": self.protocol,
            "age_years": self.age_years,
            "sex": self.sex,
            "comparable": a.comparable,
            "not_comparable_reason": a.not_comparable_reason,
            "risk": a.risk,
            "structures": a.structures,
        }


def assess_values(
    values: Sequence[MeasuredValue], model: NormativeModel, settings: Settings
) -> list[AssessedVisit]:
    """Every visit of every subject, assessed against the subject's other visits."""
    by_subject: dict[str, list[MeasuredValue]] = defaultdict(list)
    for value in values:
        by_subject[value.subject_id].append(value)
    assessed = []
    for subject, rows in by_subject.items():
        sex = _one(subject, "sex", {r.sex for r in rows if r.sex})
        birth = _one(subject, "birth_date", {r.birth_date for r in rows if r.birth_date})
        visits: dict[tuple[datetime, str], list[MeasuredValue]] = defaultdict(list)
        for row in rows:
            visits[(row.visit_at, row.protocol)].append(row)
        points = {
            key: _point(subject, key, visit_rows, model) for key, visit_rows in visits.items()
        }
        for (when, protocol), point in sorted(points.items()):
            ages = {r.age_years for r in visits[(when, protocol)] if r.age_years is not None}
            age = age_years(birth, when) if birth else _one(subject, "age_years at one visit", ages)
            result = assess_visit(
                point, list(points.values()), model, settings, age_years=age, sex=sex
            )
            assessed.append(AssessedVisit(subject, when, protocol, age, sex, result))
    return assessed


def _point(
    subject: str, key: tuple[datetime, str], rows: Sequence[MeasuredValue], model: NormativeModel
) -> HistoryPoint:
    when, protocol = key
    return HistoryPoint(
        study_uid=f"{subject}@{when.isoformat()}" + (f"/{protocol}" if protocol else ""),
        acquired_at=when,
        fingerprint=ProtocolFingerprint(
            field_strength_t=0.0,
            echo_times_ms=(),
            voxel_mm=(0.0, 0.0, 0.0),
            reference_region=model.reference_region,
            pipeline_version=EXTERNAL_PIPELINE,
            protocol=protocol,
        ),
        stats={
            (r.structure, r.side): {**dict.fromkeys(SIDE_STATS), "mean_ppb": r.mean_ppb}
            for r in rows
        },
    )


def _one(subject: str, column: str, found: set[_T]) -> _T | None:
    """The subject's single value of a column; two different ones are an error in the table."""
    if len(found) > 1:
        raise ValuesError(f"subject {subject} has more than one {column} in the table")
    return next(iter(found), None)
