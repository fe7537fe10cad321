"""Per-structure numbers of a processing record: statistics (ppb, ml), norms scores, changes.

`monitor.measure.report_block` produces the statistics and the tracking step
(`monitor.tracking.assess`) adds the norms score and change fields; the SR, FHIR
Observations and the demo read them here by attribute. Every value is optional: a structure
or a single side may be withheld by segmentation QC, and a score or change may not exist.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from monitor.record.fields import known_fields, optional_float

BILATERAL = "bilateral"
SIDES = ("left", "right")

REPORTED_DECIMALS = {
    "mean_ppb": 1,
    "median_ppb": 1,
    "sd_ppb": 1,
    "volume_ml": 2,
    "z": 2,
    "percentile": 1,
    "change_ppb": 1,
    "change_pct": 1,
    "change_from_baseline_ppb": 1,
    "change_from_baseline_pct": 1,
    "annual_change_ppb_per_year": 1,
}
"""Decimals a report shows per field: the precision of the measurement (ppb 0.1 against a
scan-rescan SD of 2-4 ppb, z 0.01, ml 0.01), not the 13-15 digits of a float."""


@dataclass(frozen=True)
class Values:
    """The numbers of one structure side (or both sides together), as stored in JSON."""

    mean_ppb: float | None = None
    median_ppb: float | None = None
    sd_ppb: float | None = None
    volume_ml: float | None = None
    voxel_count: int | None = None
    z: float | None = None
    percentile: float | None = None
    reference_range_ppb: tuple[float, float] | None = None
    interpretation: str | None = None
    change_ppb: float | None = None
    change_pct: float | None = None
    change_from_baseline_ppb: float | None = None
    change_from_baseline_pct: float | None = None
    annual_change_ppb_per_year: float | None = None
    reliable_change: bool | None = None
    reliable_change_from_baseline: bool | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Values:
        known = known_fields(cls, data)
        limits = known.get("reference_range_ppb")
        if limits is not None:
            known["reference_range_ppb"] = tuple(optional_float(v) for v in limits)
        return cls(**known)

    def rounded(self) -> Values:
        """These values as reports show them (`REPORTED_DECIMALS`); the stored record keeps
        full precision so later statistics do not accumulate rounding."""
        changes: dict[str, Any] = {
            key: round(float(value), decimals)
            for key, decimals in REPORTED_DECIMALS.items()
            if (value := getattr(self, key)) is not None
        }
        if self.reference_range_ppb is not None:
            changes["reference_range_ppb"] = tuple(
                None if v is None else round(float(v), 1) for v in self.reference_range_ppb
            )
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        limits = self.reference_range_ppb
        data["reference_range_ppb"] = None if limits is None else list(limits)
        return data


@dataclass(frozen=True)
class StructureValues:
    """One deep grey matter structure: both sides together plus whichever sides were kept."""

    bilateral: Values
    sides: Mapping[str, Values] = field(default_factory=dict)
    """"left"/"right" -> that side's numbers; a side withheld by QC is absent."""

    def side(self, side: str) -> Values | None:
        """The numbers of `side` ("bilateral" = both sides together), None when absent."""
        return self.bilateral if side == BILATERAL else self.sides.get(side)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StructureValues:
        """Also reads blocks from before per-side statistics: only ``left_ppb``/``right_ppb``."""
        stored = data.get("sides")
        if isinstance(stored, Mapping):
            sides = {name: Values.from_json(v) for name, v in stored.items() if v is not None}
        else:
            sides = {
                name: Values(mean_ppb=data[f"{name}_ppb"])
                for name in SIDES
                if data.get(f"{name}_ppb") is not None
            }
        return cls(bilateral=Values.from_json(data), sides=sides)

    def to_json(self) -> dict[str, Any]:
        """The layout `report_block` and tracking write: bilateral fields, side means, sides."""
        bilateral = self.bilateral.to_json()
        means = {f"{name}_ppb": _side_mean(self.sides.get(name)) for name in SIDES}
        first, *rest = bilateral.items()
        return {
            first[0]: first[1],
            **means,
            **dict(rest),
            "sides": {name: values.to_json() for name, values in self.sides.items()},
        }


@dataclass(frozen=True)
class Structures:
    """Every measured structure of a visit; empty when segmentation QC withheld them all."""

    by_name: Mapping[str, StructureValues] = field(default_factory=dict)
    reference: str | None = None
    """The reference region the values are relative to (e.g. "whole_brain")."""

    def __bool__(self) -> bool:
        return bool(self.by_name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.by_name)

    def get(self, structure: str) -> StructureValues | None:
        return self.by_name.get(structure)

    def values(self, structure: str, side: str) -> Values | None:
        """One structure side's numbers ("bilateral" = both sides), None when not measured."""
        block = self.by_name.get(structure)
        return None if block is None else block.side(side)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Structures:
        data = data or {}
        reference = data.get("reference")
        return cls(
            by_name={
                name: StructureValues.from_json(block)
                for name, block in data.items()
                if isinstance(block, Mapping)
            },
            reference=None if reference is None else str(reference),
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {name: block.to_json() for name, block in self.by_name.items()}
        if self.reference is not None:
            data["reference"] = self.reference
        return data


def _side_mean(values: Values | None) -> float | None:
    return None if values is None else values.mean_ppb
