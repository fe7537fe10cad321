"""A provenance block as the pipeline stores it in a record's QC (`dicom_node.process.pipeline
.provenance`), for the SR and FHIR tests of the consensus provenance (issue 16)."""

from __future__ import annotations

from typing import Any

__all__ = ["PROVENANCE"]

PROVENANCE: dict[str, Any] = {
    "b0_tesla": 3.0,
    "echo_times_ms": [4.0, 9.5, 15.0, 20.5, 26.0],
    "voxel_mm": [1.0, 1.0, 2.0],
    "steps": [
        "ROMEO-style region-growing phase unwrapping",
        "weighted multi-echo field fit",
        "V-SHARP background removal",
        "TV-ADMM dipole inversion",
        "atlas registration with susceptibility-contrast borders",
    ],
    "software": "qsm-monitor 0.1.0",
    "reference_region": "whole_brain",
}
