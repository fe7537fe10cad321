"""Quality checks that decide whether a segmentation may be reported.

Each check returns human-readable failure reasons; an empty list means it passed. Plausible
structure volumes (per side, adults) come from normative MRI volumetry: thalamus roughly
6-9 ml, caudate 3-4.5 ml, putamen 4-6 ml, globus pallidus 1.3-2.2 ml (Fischl et al., Neuron
2002; Walhovd et al., Neurobiol. Aging 2005; Potvin et al., NeuroImage 2016, FreeSurfer norms
over the adult life span). The Harvard-Oxford maximum-probability thalamus is larger
(about 9 ml per side at p >= 0.5 in MNI space), and partial slabs and atrophy shrink volumes,
so the configured ranges (`SegmentationSettings.volume_ranges_ml`) are wide: they catch a
failed registration or a structure cut by the slab, not normal variation.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from monitor.segment.structures import SIDES, STRUCTURES


def structure_volumes_ml(
    labels: np.ndarray, label_names: Mapping[int, str], voxel_mm: tuple[float, float, float]
) -> dict[str, float]:
    voxel_ml = float(np.prod(voxel_mm)) / 1000.0
    counts = np.bincount(labels.ravel().astype(np.int64), minlength=max(label_names) + 1)
    return {name: float(counts[label]) * voxel_ml for label, name in label_names.items()}


def volume_failures(
    volumes_ml: Mapping[str, float], ranges_ml: Mapping[str, tuple[float, float]]
) -> list[str]:
    failures = []
    for structure in STRUCTURES:
        low, high = ranges_ml[structure]
        for side in SIDES:
            name = f"{structure}_{side}"
            volume = volumes_ml.get(name, 0.0)
            if not low <= volume <= high:
                failures.append(f"{name} volume {volume:.2f} ml outside plausible {low}-{high} ml")
    return failures


def coverage_failures(coverage: Mapping[str, float], minimum: float) -> list[str]:
    """Structures the slab (or brain mask) does not cover well enough to measure."""
    return [
        f"slab covers only {100 * fraction:.0f}% of {name}"
        for name, fraction in coverage.items()
        if fraction < minimum
    ]


def registration_failures(  # noqa: PLR0913 - one threshold per measured quantity
    nmi: float,
    min_nmi: float,
    brain_dice: float,
    min_brain_dice: float,
    scales: tuple[float, float, float],
    max_scale_deviation: float,
) -> list[str]:
    failures = []
    if nmi < min_nmi:
        failures.append(f"registration similarity NMI {nmi:.3f} below {min_nmi}")
    if brain_dice < min_brain_dice:
        failures.append(f"brain outline overlap {brain_dice:.2f} below {min_brain_dice}")
    if any(abs(s - 1.0) > max_scale_deviation for s in scales):
        pretty = ", ".join(f"{s:.2f}" for s in scales)
        failures.append(f"implausible template scaling ({pretty})")
    return failures
