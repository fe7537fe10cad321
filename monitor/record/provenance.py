"""Acquisition and processing provenance of one result, as the 2024 QSM consensus asks every
reported value to carry (QSM Consensus Organization Committee, MRM 2024;91:1834): field
strength, echo times, voxel size, the processing steps with the software version, and the
reference region. Stored in the record's QC JSON under "provenance"; records from before it
simply have none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Provenance", "region_words"]

REFERENCE_WORDS = {"whole_brain": "whole-brain mean", "csf": "lateral ventricle CSF mean"}


def region_words(region: str) -> str:
    """A reference region in words for reports (an unknown name as given)."""
    return REFERENCE_WORDS.get(region, region.replace("_", " "))


@dataclass(frozen=True)
class Provenance:
    b0_tesla: float
    echo_times_ms: tuple[float, ...]
    voxel_mm: tuple[float, float, float]
    steps: tuple[str, ...]
    """Processing chain in order, e.g. ("ROMEO unwrapping", "V-SHARP", "TV-ADMM")."""
    software: str
    """Name and version that produced the values."""
    reference_region: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Provenance | None:
        if not isinstance(data, Mapping):
            return None
        return cls(
            b0_tesla=float(data["b0_tesla"]),
            echo_times_ms=tuple(float(t) for t in data["echo_times_ms"]),
            voxel_mm=tuple(float(v) for v in data["voxel_mm"]),  # type: ignore[arg-type]
            steps=tuple(str(s) for s in data["steps"]),
            software=str(data["software"]),
            reference_region=str(data["reference_region"]),
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        return {
            key: list(value) if isinstance(value, tuple) else value for key, value in data.items()
        }

    def lines(self) -> list[str]:
        """One phrase per item, for reports (SR algorithm parameters, FHIR notes)."""
        echoes = ", ".join(f"{t:.2f}" for t in self.echo_times_ms)
        voxel = " x ".join(f"{v:.2f}" for v in self.voxel_mm)
        region = region_words(self.reference_region)
        return [
            f"field strength {self.b0_tesla:.1f} T",
            f"echo times {echoes} ms",
            f"voxel size {voxel} mm",
            "processing: " + ", ".join(self.steps),
            f"software: {self.software}",
            f"reference region: {region}",
        ]
