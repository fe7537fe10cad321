"""Protocol fingerprint: what must match for two visits' values to be compared.

Susceptibility values depend on field strength, echo times, resolution, the reference region
and the processing pipeline, so a change between visits acquired or processed differently may
be an artefact. Comparable means: the same nominal field strength, the same number of echoes
with each echo time within tolerance, voxel sizes within tolerance (compared sorted, so a
re-oriented slab with the same voxels still compares), the same reference region and the same
pipeline major version. Vendor, model and pipeline parameters are kept for the record but do not
decide on their own: sites upgrade scanners, and the numbers above are what changes values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from monitor.settings import TrackingSettings


@dataclass(frozen=True)
class ProtocolFingerprint:
    field_strength_t: float
    echo_times_ms: tuple[float, ...]
    voxel_mm: tuple[float, float, float]
    reference_region: str
    pipeline_version: str
    vendor: str = ""
    model: str = ""
    pipeline_params: Mapping[str, Any] = field(default_factory=dict, compare=False)
    protocol: str = ""
    """A named protocol, for values measured elsewhere (`qsm-monitor assess`'s protocol
    column); empty for the pipeline's own acquisitions, which compare by the fields above."""


def major_version(version: str) -> str:
    return version.split(".", 1)[0]


def incompatibility(
    earlier: ProtocolFingerprint, current: ProtocolFingerprint, settings: TrackingSettings
) -> str | None:
    """Why `current` cannot be compared with `earlier` (plain text), or None when it can."""
    if (
        abs(earlier.field_strength_t - current.field_strength_t)
        > settings.field_strength_tolerance_t
    ):
        return f"field strength {current.field_strength_t:g} T vs {earlier.field_strength_t:g} T"
    if len(earlier.echo_times_ms) != len(current.echo_times_ms) or any(
        abs(a - b) > settings.echo_time_tolerance_ms
        for a, b in zip(earlier.echo_times_ms, current.echo_times_ms, strict=True)
    ):
        return f"echo times {_list(current.echo_times_ms)} ms vs {_list(earlier.echo_times_ms)} ms"
    if any(
        abs(a - b) > settings.voxel_tolerance_mm
        for a, b in zip(sorted(earlier.voxel_mm), sorted(current.voxel_mm), strict=True)
    ):
        return f"voxel size {_list(current.voxel_mm)} mm vs {_list(earlier.voxel_mm)} mm"
    if earlier.reference_region != current.reference_region:
        return f"reference region {current.reference_region} vs {earlier.reference_region}"
    if earlier.protocol != current.protocol:
        return f"protocol {current.protocol or '(none)'} vs {earlier.protocol or '(none)'}"
    if major_version(earlier.pipeline_version) != major_version(current.pipeline_version):
        return (
            f"pipeline version {current.pipeline_version} vs {earlier.pipeline_version} "
            "(re-process the earlier visit to compare)"
        )
    return None


def _list(values: tuple[float, ...]) -> str:
    return "/".join(f"{v:g}" for v in values)
