"""The deep grey matter structures we report and their integer ids on the acquisition grid.

Names are ``<structure>_<side>``, as in `monitor.anatomy_data` and the phantom.

One fixed numbering is used by every segmentation method (atlas or external), so measurement,
QC and reports never need to know where a label map came from.
"""

from __future__ import annotations

from types import MappingProxyType

STRUCTURES: tuple[str, ...] = ("thalamus", "caudate", "putamen", "globus_pallidus")
"""Reported structures, in report order; each is measured per side."""

SIDES: tuple[str, ...] = ("left", "right")

REPORTED_NAMES: tuple[str, ...] = tuple(f"{s}_{side}" for s in STRUCTURES for side in SIDES)
"""Every reported structure and side, e.g. "thalamus_left"; QC judges each on its own."""


def structure_of(name: str) -> str:
    """'putamen_left' -> 'putamen': what is typical of a nucleus (its susceptibility, its
    probability in the template) belongs to the structure, not to one side."""
    return name.rsplit("_", 1)[0]


CSF_LABELS: tuple[str, ...] = ("lateral_ventricle_left", "lateral_ventricle_right")
"""Segmented only to serve as a CSF reference region; never reported as a structure."""


def _numbering() -> dict[int, str]:
    names = [f"{structure}_{side}" for structure in STRUCTURES for side in SIDES]
    return {index + 1: name for index, name in enumerate([*names, *CSF_LABELS])}


LABEL_NAMES = MappingProxyType(_numbering())
"""Label id -> name, e.g. 1 -> "thalamus_left"; 0 is background."""

LABEL_IDS = MappingProxyType({name: label for label, name in LABEL_NAMES.items()})
"""Name -> label id, the inverse of `LABEL_NAMES`."""
