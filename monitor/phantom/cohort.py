"""A small longitudinal cohort: one MS patient followed yearly and one stable control.

The end-to-end tracking test and `qsm-monitor demo` both need patients whose susceptibility
history is known. The patient follows the seed study's direction (thalamus falling, globus
pallidus rising) in steps near the default reliable-change limit (6.7 ppb for a scan-rescan SD
of 2.4 ppb), while the control only differs by noise between its two scans.

Each visit is a `PhantomConfig` (via `with_structure_chi`) plus the identity fields of
`dicom_node.synthetic.modules.PatientIdentity` (same names, so
``PatientIdentity(**asdict(visit.identity))`` builds the DICOM identity; `monitor` never imports
`dicom_node`), plus the nominal per-structure susceptibility put into the phantom. The nominal
value is what a structure is made of; what an ideal measurement over the labelled region sees
is lower in contrast (the atlas probabilities blend each structure with its surroundings), so
compare a pipeline against `true_roi_means_ppb` (the true map over the true labels), not
against the nominal values.

Study UIDs are derived from the scenario (UUID-derived ``2.25`` UIDs), so a cohort is the same
every time it is built and a re-run of the demo finds its earlier visits.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType

from monitor.measure import measure_structures
from monitor.phantom.anatomy import DEFAULT_PROPERTIES
from monitor.phantom.simulate import Phantom, PhantomConfig, with_structure_chi
from monitor.segment.evaluation import to_structure_ids
from monitor.segment.structures import LABEL_NAMES, SIDES, STRUCTURES

COHORT_PHANTOM = PhantomConfig(
    shape=(80, 96, 48),
    voxel_mm=(2.0, 2.0, 2.0),
    n_echoes=5,
    field_margin_mm=10.0,
    supersample=False,
)
"""The cheapest slab on which atlas segmentation passes its QC and ROI changes are recovered:
2 mm isotropic covering the cerebrum around the deep grey matter (3 and 2.5 mm voxels fail the
volume QC: partial volume inflates the labels), with the clinical echo train of the default
phantom (5 echoes, 4-28 ms: the last echo nearer tissue T2*, as QSM protocols recommend).
With 3 echoes (to 16 ms) the field was noisy enough that a change missed the truth by up to
3.5 ppb on some noise draws and CPUs; 5 echoes brought the worst over three draws to 2.2 ppb.
Measured in docs/tracking.md."""

THALAMUS_PPB_PER_YEAR = -10.0
PALLIDUS_PPB_PER_YEAR = 10.0
"""Nominal yearly steps of the patient. Atlas blending leaves ~94 % of a step in the true ROI
mean (9.0-9.4 ppb); the pipeline measured 7.2-10.3 ppb per year on `COHORT_PHANTOM` (three
noise draws), within 3 ppb of the truth, and each structure's change since baseline is reliable
by the second follow-up (limit 6.7 ppb). Larger steps are not better: the chi-refined
registration moves labels when a structure's susceptibility moves, so errors grow with the
step (a 12 ppb pallidal step was once measured 3.2 ppb short, a 20 ppb thalamic fall 8 ppb short;
docs/tracking.md)."""

PATIENT_THALAMUS_OFFSET_PPB = 10.0
"""The patient's thalamus starts this far above the phantom default (20, 10, 0 ppb nominal
over three visits): lower down the thalamus loses its contrast against the internal capsule
in the chi-refined registration, its labels jitter and the measured fall saturates (a -2 to
-14 ppb step was measured 4.3 ppb short). Later visits of a longer demo go there anyway."""

_UID_NAMESPACE = uuid.UUID("6f1f4d0e-8a3c-4d61-9d0b-5b2f2f3d7a10")


@dataclass(frozen=True)
class VisitIdentity:
    """The DICOM identity of one visit; field names match `PatientIdentity`. Dates are DA."""

    patient_id: str
    birth_date: str
    sex: str
    study_date: str
    study_time: str
    study_uid: str


@dataclass(frozen=True)
class CohortVisit:
    """One simulated visit: who and when, what to simulate, and what it is made of."""

    subject: str
    """"patient" or "control"."""
    identity: VisitIdentity
    config: PhantomConfig
    true_chi_ppb: Mapping[str, float] = field(repr=False)
    """Nominal susceptibility per structure (bilateral, ppb, relative to water like the
    phantom's properties), e.g. {"thalamus": -10.0, ...}."""
    noise_seed: int
    """Seed of the visit's noise: repeat scans differ only by noise, as in a scan-rescan pair."""


def visit_uid(*parts: str) -> str:
    """A stable DICOM UID for a named scenario element (UUID-derived, PS3.5 B.2)."""
    return f"2.25.{uuid.uuid5(_UID_NAMESPACE, '/'.join(parts)).int}"


def subject_visits(  # noqa: PLR0913 - one scenario, spelled out
    subject: str,
    patient_id: str,
    birth_date: date,
    sex: str,
    first_visit: date,
    n_visits: int,
    ppb_per_year: Mapping[str, float],
    *,
    baseline_offset_ppb: Mapping[str, float] | None = None,
    base: PhantomConfig = COHORT_PHANTOM,
    seed: int = 0,
) -> tuple[CohortVisit, ...]:
    """Yearly visits of one subject whose structures start at the phantom defaults plus
    `baseline_offset_ppb` and change linearly by `ppb_per_year`."""
    if n_visits < 1:
        raise ValueError(f"a subject needs at least one visit, got {n_visits}")
    offsets = baseline_offset_ppb or {}
    unknown = (set(ppb_per_year) | set(offsets)) - set(STRUCTURES)
    if unknown:
        raise ValueError(f"unknown structures {sorted(unknown)}; expected some of {STRUCTURES}")
    visits = []
    for index in range(n_visits):
        when = _years_later(first_visit, index)
        chi_ppm = {
            name: DEFAULT_PROPERTIES.chi_ppm[name]
            + (offsets.get(name, 0.0) + index * ppb_per_year.get(name, 0.0)) / 1000.0
            for name in STRUCTURES
        }
        sides = {f"{name}_{side}": value for name, value in chi_ppm.items() for side in SIDES}
        identity = VisitIdentity(
            patient_id=patient_id,
            birth_date=birth_date.strftime("%Y%m%d"),
            sex=sex,
            study_date=when.strftime("%Y%m%d"),
            study_time="093000",
            study_uid=visit_uid(subject, patient_id, str(index)),
        )
        visits.append(
            CohortVisit(
                subject=subject,
                identity=identity,
                config=with_structure_chi(base, **sides),
                true_chi_ppb=MappingProxyType(
                    {name: round(value * 1000.0, 6) for name, value in chi_ppm.items()}
                ),
                noise_seed=seed + index,
            )
        )
    return tuple(visits)


def ms_patient(n_visits: int = 3, base: PhantomConfig = COHORT_PHANTOM) -> tuple[CohortVisit, ...]:
    """The seed study's pattern: thalamus falling, globus pallidus rising, yearly visits."""
    return subject_visits(
        "patient",
        "QSM-DEMO-MS01",
        date(1982, 4, 12),
        "F",
        date(2023, 3, 6),
        n_visits,
        {"thalamus": THALAMUS_PPB_PER_YEAR, "globus_pallidus": PALLIDUS_PPB_PER_YEAR},
        baseline_offset_ppb={"thalamus": PATIENT_THALAMUS_OFFSET_PPB},
        base=base,
        seed=100,
    )


def stable_control(
    n_visits: int = 2, base: PhantomConfig = COHORT_PHANTOM
) -> tuple[CohortVisit, ...]:
    """A healthy subject scanned yearly whose susceptibility does not change."""
    return subject_visits(
        "control",
        "QSM-DEMO-HC01",
        date(1968, 9, 30),
        "M",
        date(2024, 5, 13),
        n_visits,
        {},
        base=base,
        seed=200,
    )


def longitudinal_cohort(
    patient_visits: int = 3, control_visits: int = 2, base: PhantomConfig = COHORT_PHANTOM
) -> tuple[CohortVisit, ...]:
    """The patient's visits, then the control's, each subject in chronological order."""
    return (*ms_patient(patient_visits, base), *stable_control(control_visits, base))


def true_roi_means_ppb(phantom: Phantom, erode_voxels: int = 1) -> dict[str, float]:
    """What a perfect pipeline would report: the true map over the true labels, measured and
    referenced exactly as `monitor.measure` does (bilateral means, whole-brain reference)."""
    measured = measure_structures(
        phantom.chi_ppm,
        to_structure_ids(phantom.labels, phantom.label_names),
        LABEL_NAMES,
        phantom.brain_mask,
        phantom.acquisition.voxel_mm,
        "whole_brain",
        erode_voxels,
    )
    return {name: stats.mean_ppb for name, stats in measured.bilateral.items()}


def _years_later(start: date, years: int) -> date:
    """The same calendar day `years` later (28 February for a 29 February start)."""
    try:
        return start.replace(year=start.year + years)
    except ValueError:
        return start.replace(year=start.year + years, day=28)
