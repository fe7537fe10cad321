"""What `process` and `reprocess` print per study: values or the reason there are none.

A study whose segmentation QC withheld every structure used to print only its output paths
and exit 0, which read as success; now each study says its values per structure and side
(ppb, to 0.1), names what was withheld and why, and `is_reportable` lets the command exit
with its own code when a study gave nothing a clinician could read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from monitor.record import Qc, region_words
from monitor.segment.structures import SIDES, STRUCTURES

__all__ = ["is_reportable", "record_summary"]


def is_reportable(record: Mapping[str, Any]) -> bool:
    """No error, segmentation QC passed, and at least one structure has a value."""
    if record.get("error"):
        return False
    segmentation = (record.get("qc") or {}).get("segmentation") or {}
    return bool(segmentation.get("reportable", False)) and bool(_values(record))


def record_summary(record: Mapping[str, Any]) -> list[str]:
    """Lines for one study: the headline, then one line per structure and the outputs."""
    uid = record.get("study_uid") or "study"
    if record.get("error"):
        return [f"{uid}: {record['error']}"]
    segmentation = (record.get("qc") or {}).get("segmentation") or {}
    if not is_reportable(record):
        reason = segmentation.get("reason") or "no structure could be measured"
        lines = [f"{uid}: NOT REPORTABLE: {reason}"]
    else:
        risk = (record.get("risk") or {}).get("level", "-")
        lines = [f"{uid}: risk {risk}", f"  values against {_reference_words(record)}"]
        withheld = segmentation.get("withheld") or {}
        values = _values(record)
        brain_mean = _whole_brain_mean(record)
        for structure in STRUCTURES:
            parts = []
            for side in SIDES:
                name = f"{structure}_{side}"
                if name in values and brain_mean is not None:
                    against_brain = values[name] - brain_mean
                    parts.append(f"{side} {values[name]:.1f} ppb ({against_brain:.1f} vs brain)")
                elif name in values:
                    parts.append(f"{side} {values[name]:.1f} ppb")
                else:
                    parts.append(f"{side} withheld ({withheld.get(name, 'no value')})")
            lines.append(f"  {structure.replace('_', ' ')}: " + ", ".join(parts))
        caution = Qc(record.get("qc") or {}).left_right_caution
        if caution:
            lines.append(f"  {caution}")
    outputs = record.get("outputs") or {}
    if outputs:
        lines.append("  outputs: " + ", ".join(str(path) for path in outputs.values()))
    return lines


def _reference_words(record: Mapping[str, Any]) -> str:
    region = (record.get("structures") or {}).get("reference") or "whole_brain"
    return "the " + region_words(str(region))


def _whole_brain_mean(record: Mapping[str, Any]) -> float | None:
    """The brain's mean on the reported scale when values use another reference (the
    whole-brain values are shown beside them, 2024 QSM consensus); None otherwise."""
    region = (record.get("structures") or {}).get("reference") or "whole_brain"
    brain_mean = (record.get("qc") or {}).get("whole_brain_mean_ppb")
    return None if region == "whole_brain" or brain_mean is None else float(brain_mean)


def _values(record: Mapping[str, Any]) -> dict[str, float]:
    """Per structure and side, the reported mean (ppb); withheld sides are absent."""
    found = {}
    for structure, block in (record.get("structures") or {}).items():
        if not isinstance(block, Mapping):  # the "reference" entry names the region
            continue
        for side, values in (block.get("sides") or {}).items():
            mean = (values or {}).get("mean_ppb")
            if mean is not None:
                found[f"{structure}_{side}"] = float(mean)
    return found
