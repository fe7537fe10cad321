"""Quality checks that decide what a segmentation may report.

Each check returns human-readable failure reasons. Registration checks concern the whole
result (a failed registration misplaces every structure); structure checks return
``{structure_side: reason}`` so that one implausible structure withholds that structure only.

Plausible structure volumes (per side, adults) come from normative MRI volumetry: thalamus
roughly 6-9 ml, caudate 3-4.5 ml, putamen 4-6 ml, globus pallidus 1.3-2.2 ml (Fischl et al.,
Neuron 2002; Walhovd et al., Neurobiol. Aging 2005; Potvin et al., NeuroImage 2016, FreeSurfer
norms over the adult life span; Keller et al., 2012 for thalamic atrophy of 10-20 % in
disease). The Harvard-Oxford maximum-probability thalamus is larger (about 9 ml per side at
p >= 0.5 in MNI space), and partial slabs and atrophy shrink volumes, so the configured ranges
(`SegmentationSettings.volume_ranges_ml`) are wide: they catch a failed registration or a
structure cut by the slab, not normal variation. Left/right asymmetry of these nuclei is a
few per cent in healthy adults and rarely above 20 % (Potvin et al. 2016; Guadalupe et al.,
Brain Imaging Behav. 2017, ENIGMA asymmetry indices |AI| < 0.1 on average), so a side more
than `max_side_ratio` times the other means a mis-registered side, not anatomy.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import numpy as np

from monitor.segment.structures import SIDES, STRUCTURES

__all__ = [
    "asymmetry_problems",
    "coverage_failures",
    "coverage_problems",
    "expected_volume_problems",
    "registration_failures",
    "structure_volumes_ml",
    "volume_failures",
    "volume_problems",
]


def structure_volumes_ml(
    labels: np.ndarray, label_names: Mapping[int, str], voxel_mm: tuple[float, float, float]
) -> dict[str, float]:
    voxel_ml = float(np.prod(voxel_mm)) / 1000.0
    counts = np.bincount(labels.ravel().astype(np.int64), minlength=max(label_names) + 1)
    return {name: float(counts[label]) * voxel_ml for label, name in label_names.items()}


def volume_problems(
    volumes_ml: Mapping[str, float],
    ranges_ml: Mapping[str, tuple[float, float]],
    head_volume_factor: float = 1.0,
) -> dict[str, str]:
    """Structure -> reason, for volumes outside the plausible range of their structure.

    Volumes are judged at template head size (divided by `head_volume_factor`, the subject's
    brain volume over the template's from the linear registration), as volumetry norms
    adjust for intracranial volume: a large head's putamen of 9.9 ml is 7.1 ml at template
    size (seen on a simulated head scaled 1.12 per axis), and is not a failure.
    """
    failures = {}
    for structure in STRUCTURES:
        low, high = ranges_ml[structure]
        for side in SIDES:
            name = f"{structure}_{side}"
            volume = volumes_ml.get(name, 0.0)
            normalised = volume / head_volume_factor
            if not low <= normalised <= high:
                at_template = (
                    f" ({normalised:.2f} ml at template head size)"
                    if head_volume_factor != 1.0
                    else ""
                )
                failures[name] = (
                    f"volume {volume:.2f} ml{at_template} outside plausible {low}-{high} ml"
                )
    return failures


def volume_failures(
    volumes_ml: Mapping[str, float], ranges_ml: Mapping[str, tuple[float, float]]
) -> list[str]:
    """`volume_problems` as sentences naming the structure."""
    return [f"{name} {why}" for name, why in volume_problems(volumes_ml, ranges_ml).items()]


def asymmetry_problems(
    volumes_ml: Mapping[str, float], max_side_ratio: float, already: Collection[str] = ()
) -> dict[str, str]:
    """Both sides of a structure whose larger side exceeds `max_side_ratio` x the smaller:
    which side is wrong cannot be told, so neither is reported. Structures with a side in
    `already` (withheld for another reason, which tells the wrong side) are not judged."""
    failures = {}
    for structure in STRUCTURES:
        if any(f"{structure}_{side}" in already for side in SIDES):
            continue
        left, right = (volumes_ml.get(f"{structure}_{side}", 0.0) for side in SIDES)
        ratio = max(left, right) / max(min(left, right), 1e-9)
        if ratio > max_side_ratio:
            for side in SIDES:
                failures[f"{structure}_{side}"] = (
                    f"left/right volumes {left:.2f}/{right:.2f} ml differ by more than "
                    f"{max_side_ratio:.2f}x"
                )
    return failures


def expected_volume_problems(
    volumes_ml: Mapping[str, float],
    expected_ml: Mapping[str, float],
    allowed: tuple[float, float],
) -> dict[str, str]:
    """Structures whose labelled volume is far from the atlas volume carried by the linear
    registration (the head's size): a local deformation that ran away, or a structure the
    slab or brain mask cuts."""
    failures = {}
    for name, expected in expected_ml.items():
        ratio = volumes_ml.get(name, 0.0) / max(expected, 1e-9)
        if not allowed[0] <= ratio <= allowed[1]:
            failures[name] = (
                f"volume {volumes_ml.get(name, 0.0):.2f} ml is {ratio:.2f}x the "
                f"{expected:.2f} ml the registered atlas predicts"
            )
    return failures


def coverage_problems(coverage: Mapping[str, float], minimum: float) -> dict[str, str]:
    """Structures the slab (or brain mask) does not cover well enough to measure."""
    return {
        name: f"slab covers only {100 * fraction:.0f}% of {name}"
        for name, fraction in coverage.items()
        if fraction < minimum
    }


def coverage_failures(coverage: Mapping[str, float], minimum: float) -> list[str]:
    """`coverage_problems` as a list of sentences."""
    return list(coverage_problems(coverage, minimum).values())


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
        failures.append(f"registration failed: template similarity NMI {nmi:.3f} below {min_nmi}")
    if brain_dice < min_brain_dice:
        failures.append(
            f"registration failed: brain outline overlap {brain_dice:.2f} below {min_brain_dice}"
        )
    if any(abs(s - 1.0) > max_scale_deviation for s in scales):
        pretty = ", ".join(f"{s:.2f}" for s in scales)
        failures.append(f"registration failed: implausible template scaling ({pretty})")
    return failures
