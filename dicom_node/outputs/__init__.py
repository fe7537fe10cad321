"""Outputs: a processing record in, the clinical objects of one acquisition out.

In: the record of a processed acquisition (values in ppb, QC, history, risk), its maps and
labels, and the source images' headers. Out, written durably into the acquisition's output
folder by the emit step: TID 1500 SR, Parametric Map and MR derived series, SEG, key images
(Secondary Capture), the FHIR transaction Bundle and the alert. Each builder returns datasets
and writes nothing; numbers come only from the record, so every destination reports the same
values. The builders (highdicom, matplotlib, fhir.resources) load when emit needs them. Owns
no tables.
"""

from dicom_node.outputs.common import read_sources
from dicom_node.outputs.emit import (
    FILE_NAMES,
    EmitInput,
    Emitted,
    emit_amendment,
    emit_outputs,
    write_json,
)

__all__ = [
    "FILE_NAMES",
    "EmitInput",
    "Emitted",
    "emit_amendment",
    "emit_outputs",
    "read_sources",
    "write_json",
]
