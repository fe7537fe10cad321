"""The processing record: what one processed acquisition produced, typed.

It flows from the pipeline into every clinical output (SR, maps, SEG, key images, FHIR,
alert), the results table and the `--json` output. Read by attribute, a misspelt name fails
loudly instead of silently dropping a value from a report. `to_json` keeps the layout rows and
`--json` output always had; `from_json` reads rows written by any version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from monitor.record.fields import known_fields
from monitor.record.provenance import Provenance
from monitor.record.values import Structures

TRACKING_FIELDS = (
    "previous_study_uid",
    "baseline_study_uid",
    "previous_study_date",
    "baseline_study_date",
    "birth_date",
    "comparable",
    "not_comparable_reason",
    "age_years",
    "sex",
    "study_datetime",
    "reference_region",
    "pipeline_version",
    "norms",
    "identity_status",
)
"""The tracking step's record fields besides risk and structures, in stored order (the same
names as `monitor.tracking.history.HISTORY_FIELDS`; a test keeps them equal)."""


@dataclass(frozen=True)
class Risk:
    """The longitudinal assessment: "normal", "elevated" or "indeterminate", and why."""

    level: str
    reasons: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Risk | None:
        if not isinstance(data, Mapping):
            return None
        return cls(level=str(data["level"]), reasons=tuple(data.get("reasons") or ()))

    def to_json(self) -> dict[str, Any]:
        return {"level": self.level, "reasons": list(self.reasons)}


@dataclass(frozen=True)
class Norms:
    """Which normative model scored the visit (`NormativeModel.describe`)."""

    name: str
    source: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Norms | None:
        if not isinstance(data, Mapping):
            return None
        return cls(name=str(data.get("name") or ""), source=str(data.get("source") or ""))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source}


LEFT_RIGHT_CAUTION_DEG = 10.0
"""Head roll against B0 from which per-side values carry a caution: at 10 degrees the
left-right difference moved by 6-13 ppb on simulated heads, the size of a side's
reliable-change limit (9.4 ppb), so a reader could take it for an asymmetry."""
SIDE_DIFFERENCE_PPB_PER_DEG = 1.3
"""The upper of two measurements of the left-minus-right map error (true labels, mean of
the 4 structures) per degree of B0's roll in the head: 1.3 on heads 338-348, 0.6 on held-out
heads 358-367 (docs/segmentation.md, "What the remaining map error looks like")."""


@dataclass(frozen=True)
class Qc:
    """Quality-control details, kept as the JSON the steps wrote (reconstruction QC varies
    with its settings); the values outputs depend on have typed accessors."""

    data: Mapping[str, Any] = field(default_factory=dict)

    def _segmentation(self) -> Mapping[str, Any]:
        block = self.data.get("segmentation")
        return block if isinstance(block, Mapping) else {}

    @property
    def segmentation_method(self) -> str:
        """How the labels were made ("atlas" when not recorded, the historical default)."""
        return str(self._segmentation().get("method") or "atlas")

    @property
    def segmentation_reportable(self) -> bool | None:
        value = self._segmentation().get("reportable")
        return None if value is None else bool(value)

    @property
    def segmentation_reason(self) -> str | None:
        value = self._segmentation().get("reason")
        return None if value is None else str(value)

    @property
    def b0_roll_deg(self) -> float | None:
        """How far B0 leans towards the head's left (negative: right), whole degrees, from the
        registration (`monitor.segment.registration.b0_tilt_deg`); None when not recorded."""
        tilt = self._segmentation().get("b0_tilt_deg")
        value = tilt.get("towards_left") if isinstance(tilt, Mapping) else None
        return None if value is None else float(value)

    @property
    def left_right_caution(self) -> str | None:
        """A sentence for the per-side values when the head lay rolled against B0 by
        `LEFT_RIGHT_CAUTION_DEG` or more, else None. The map's left-right difference follows
        that roll (on simulated heads up to `SIDE_DIFFERENCE_PPB_PER_DEG` ppb per degree);
        both sides' mean is not affected."""
        roll = self.b0_roll_deg
        if roll is None or abs(roll) < LEFT_RIGHT_CAUTION_DEG:
            return None
        towards = "left" if roll > 0 else "right"
        shift = SIDE_DIFFERENCE_PPB_PER_DEG * abs(roll)
        corrected = (
            " before the geometry correction, which takes much of it off"
            if self._segmentation().get("geometry_error_removed_ppb")
            else ""
        )
        return (
            f"Left-right comparison with care: the head lay rolled {abs(roll):.0f} degrees "
            f"(B0 towards its {towards}), which on simulated heads shifted left-minus-right "
            f"differences by up to about {shift:.0f} ppb{corrected}; values of both sides "
            "together are not affected."
        )

    @property
    def segmentation_withheld(self) -> dict[str, str]:
        """Structure side ("thalamus_left") -> why QC withheld it; empty when none was."""
        withheld = self._segmentation().get("withheld") or {}
        return {str(name): str(reason) for name, reason in withheld.items()}

    @property
    def provenance(self) -> Provenance | None:
        """Acquisition and processing provenance (None for records from before it)."""
        return Provenance.from_json(self.data.get("provenance"))

    @property
    def whole_brain_mean_ppb(self) -> float | None:
        """The brain's mean on the reported reference scale (measurement step), None when
        not recorded (no values, or records from before it)."""
        value = self.data.get("whole_brain_mean_ppb")
        return None if value is None else float(value)

    def with_entry(self, name: str, value: Any) -> Qc:
        """A copy with one top-level entry added or replaced."""
        return Qc({**self.data, name: value})


@dataclass(frozen=True)
class ProcessingRecord:  # the record's fields, one per stored key
    """One processed acquisition, as stored in the results table and given to the outputs."""

    idempotency_key: str
    patient_id: str
    study_uid: str
    study_date: str | None
    series_uids: tuple[str, ...] = ()
    structures: Structures = field(default_factory=Structures)
    """Deep grey matter values; empty when segmentation QC withheld them (see `qc`)."""
    risk: Risk | None = None
    """None only when processing failed."""
    previous_study_uid: str | None = None
    baseline_study_uid: str | None = None
    previous_study_date: str | None = None
    """ISO date of the visit changes are computed against (named in the reports)."""
    baseline_study_date: str | None = None
    birth_date: str | None = None
    """ISO date of birth as the DICOM header gave it (FHIR Patient.birthDate)."""
    comparable: bool | None = None
    not_comparable_reason: str | None = None
    age_years: float | None = None
    sex: str | None = None
    study_datetime: str | None = None
    """ISO date-time of the study, as the tracking step placed it in the timeline."""
    reference_region: str | None = None
    pipeline_version: str | None = None
    norms: Norms | None = None
    identity_status: str | None = None
    reassessed_study_uids: tuple[str, ...] = ()
    """Other visits of the patient whose assessment this one changed (a back-filled exam)."""
    outputs: Mapping[str, str] = field(default_factory=dict)
    """Output name (`monitor.settings.OUTPUT_NAMES`) -> file path."""
    qc: Qc = field(default_factory=Qc)
    error: str | None = None
    """One plain reason when processing failed (then `outputs` is empty)."""
    amendment: int = 0
    """How many times the assessment was re-issued after the first report."""
    superseded_risk_level: str | None = None
    """The risk level of the report an amendment replaces."""

    @property
    def comparison_text(self) -> str | None:
        """Which visits the changes are computed against, for reports; None at baseline."""
        if not self.previous_study_uid:
            return None
        text = (
            f"Changes are computed against the previous visit of "
            f"{self.previous_study_date or 'unknown date'} (study {self.previous_study_uid})"
        )
        if self.baseline_study_uid and self.baseline_study_uid != self.previous_study_uid:
            text += (
                f"; from baseline against {self.baseline_study_date or 'unknown date'} "
                f"(study {self.baseline_study_uid})"
            )
        return text + "."

    @property
    def reference_name(self) -> str | None:
        """The reference region, from the tracking step or else the measurements."""
        return self.reference_region or self.structures.reference

    def mean_against_whole_brain(self, structure: str, side: str) -> float | None:
        """A structure side's mean (ppb) against the whole-brain mean, reported beside the
        values of another reference region (2024 QSM consensus); None when the values already
        are against the whole brain, or the structure or the brain mean was not recorded."""
        values = self.structures.values(structure, side)
        brain_mean = self.qc.whole_brain_mean_ppb
        if self.reference_name in (None, "whole_brain") or brain_mean is None:
            return None
        if values is None or values.mean_ppb is None:
            return None
        return values.mean_ppb - brain_mean

    def with_tracking(self, fields: Mapping[str, Any]) -> ProcessingRecord:
        """A copy with the tracking step's fields (risk, `TRACKING_FIELDS`) from their JSON."""
        return replace(self, **tracking_values(fields))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProcessingRecord:
        """A stored row or `--json` record of any version: unknown keys are ignored, a missing
        patient ID or study date is None (minimal rows); the key and study UID must be there."""
        known = known_fields(cls, data)
        return cls(
            **{
                "patient_id": None,
                "study_date": None,
                **known,
                **tracking_values(known),
                "series_uids": tuple(known.get("series_uids") or ()),
                "structures": Structures.from_json(known.get("structures")),
                "reassessed_study_uids": tuple(known.get("reassessed_study_uids") or ()),
                "outputs": {str(k): str(v) for k, v in (known.get("outputs") or {}).items()},
                "qc": Qc(dict(known.get("qc") or {})),
                "amendment": int(known.get("amendment") or 0),
            }
        )

    def to_json(self) -> dict[str, Any]:
        """The stored layout: amendment fields appear only on amended records."""
        return {
            "idempotency_key": self.idempotency_key,
            "patient_id": self.patient_id,
            "study_uid": self.study_uid,
            "study_date": self.study_date,
            "series_uids": list(self.series_uids),
            "structures": self.structures.to_json(),
            "risk": None if self.risk is None else self.risk.to_json(),
            **{name: getattr(self, name) for name in TRACKING_FIELDS},
            "norms": None if self.norms is None else self.norms.to_json(),
            "reassessed_study_uids": list(self.reassessed_study_uids),
            "outputs": dict(self.outputs),
            "qc": dict(self.qc.data),
            "error": self.error,
            **(
                {"amendment": self.amendment, "superseded_risk_level": self.superseded_risk_level}
                if self.amendment
                else {}
            ),
        }


def tracking_values(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Typed record fields from the tracking step's JSON fields (missing ones are None)."""
    return {
        **{name: fields.get(name) for name in TRACKING_FIELDS},
        "risk": Risk.from_json(fields.get("risk")),
        "norms": Norms.from_json(fields.get("norms")),
    }
