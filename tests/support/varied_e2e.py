"""One varied head through the product from DICOM: what the end-to-end tests and benchmark judge.

The head (`support.varied_heads`) is written as a Siemens GRE study (magnitude and phase from
`support.varied_gre`), with its same-session MPRAGE when asked, and processed by
`qsm-monitor process`'s code path: assembly, reconstruction, segmentation, measurement. The
truth is the noise-free map over the true labels, measured the same way (per side, in-plane
erosion, whole-brain reference over the true brain).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dicom_node.process.batch import process_paths
from dicom_node.synthetic.modules import PatientIdentity
from dicom_node.synthetic.series import write_acquisition_series
from dicom_node.synthetic.structural import write_single_echo_series
from monitor.measure import StructureMeasurements, measure_structures
from monitor.recon.pipeline import reconstruct
from monitor.record import Qc
from monitor.segment import LABEL_NAMES, segment_deep_grey
from monitor.segment.evaluation import dice_per_structure
from monitor.segment.structures import REPORTED_NAMES, STRUCTURES
from monitor.settings import load_settings
from monitor.types import Acquisition, QSMResult
from support.varied_gre import gre_acquisition
from support.varied_heads import VariedHead, true_b0_tilt_deg

__all__ = [
    "EndToEnd",
    "dice_on_reconstructed_map",
    "direct_reconstruction",
    "map_errors_on_true_labels",
    "process_varied_head",
]


@dataclass(frozen=True)
class EndToEnd:
    """Reported and true per-side means (ppb) and label volumes (ml), `REPORTED_NAMES`
    order, NaN where withheld."""

    seed: int
    registration_path: str
    measured_ppb: np.ndarray
    true_ppb: np.ndarray
    segmentation_reason: str
    measured_ml: np.ndarray
    true_ml: np.ndarray
    measured_bilateral_ppb: np.ndarray
    """Both sides pooled (`STRUCTURES` order), the values the risk and change rules
    judge; NaN where a side is withheld."""
    true_bilateral_ppb: np.ndarray
    recorded_b0_roll_deg: float | None
    """B0's lean towards the head's left as the record carries it (`Qc.b0_roll_deg`)."""
    true_b0_roll_deg: float

    def offset_removed_errors(self) -> np.ndarray:
        """Errors minus their mean over reported structures: the reference offset (our mask's
        whole-brain mean against the true brain's) is one constant per visit."""
        return _offset_removed(self.measured_ppb - self.true_ppb)

    def offset_removed_bilateral_errors(self) -> np.ndarray:
        """`offset_removed_errors` of the bilateral values."""
        return _offset_removed(self.measured_bilateral_ppb - self.true_bilateral_ppb)


def _offset_removed(errors: np.ndarray) -> np.ndarray:
    return errors - np.nanmean(errors)


def process_varied_head(head: VariedHead, root: Path, gre: Acquisition | None = None) -> EndToEnd:
    """`head` (`support.varied_heads.simulate_head`) end to end; its T1, when simulated, is
    sent with the study. `gre` is the head's `gre_acquisition`, when the caller has it already
    (simulating it is most of a head's preparation)."""
    identity = PatientIdentity(patient_id=f"VARIED-{head.seed:04d}")
    dicom = root / "dicom"
    write_acquisition_series(
        gre if gre is not None else gre_acquisition(head),
        dicom,
        "siemens",
        identity,
        first_series_number=10,
    )
    if head.t1 is not None:
        write_single_echo_series(
            head.t1,
            head.t1_affine_ras,
            dicom,
            identity,
            series_number=5,
            description="t1_mprage_sag",
        )
    settings = load_settings(None, storage={"data_dir": root / "data"})
    (record,) = process_paths([dicom], settings)
    if record["error"] is not None:
        raise AssertionError(record["error"])
    truth = _true_label_measurements(head, head.true_chi_ppm, head.brain_mask)
    structures = record["structures"]
    sides = {
        name: ((structures.get(name.rsplit("_", 1)[0]) or {}).get("sides") or {}).get(
            name.rsplit("_", 1)[1]
        )
        or {}
        for name in REPORTED_NAMES
    }
    segmentation = record["qc"]["segmentation"]
    return EndToEnd(
        seed=head.seed,
        registration_path=str(segmentation.get("registration_path", "")),
        measured_ppb=np.array(
            [sides[n].get("mean_ppb", np.nan) for n in REPORTED_NAMES], dtype=float
        ),
        true_ppb=np.array([truth.per_side[n].mean_ppb for n in REPORTED_NAMES]),
        segmentation_reason=str(segmentation.get("reason", "")),
        measured_ml=np.array(
            [sides[n].get("volume_ml", np.nan) for n in REPORTED_NAMES], dtype=float
        ),
        true_ml=np.array([truth.per_side[n].volume_ml for n in REPORTED_NAMES]),
        measured_bilateral_ppb=np.array(
            [_or_nan((structures.get(n) or {}).get("mean_ppb")) for n in STRUCTURES]
        ),
        true_bilateral_ppb=np.array([truth.bilateral[n].mean_ppb for n in STRUCTURES]),
        recorded_b0_roll_deg=Qc(record["qc"]).b0_roll_deg,
        true_b0_roll_deg=true_b0_tilt_deg(head)[0],
    )


def _or_nan(value: float | None) -> float:
    return np.nan if value is None else float(value)


def direct_reconstruction(head: VariedHead, gre: Acquisition | None = None) -> QSMResult:
    """The head's GRE (`gre`, or simulated here) reconstructed with the default settings,
    directly (not through DICOM): the map the product would make, for the checks below."""
    return reconstruct(gre if gre is not None else gre_acquisition(head), load_settings(None).recon)


def map_errors_on_true_labels(head: VariedHead, result: QSMResult) -> np.ndarray:
    """The reconstruction's share of the end-to-end error: `result` (`direct_reconstruction`)
    measured over the *true* labels, minus the truth, offset removed (`REPORTED_NAMES` order,
    ppb). Where it is close to the end-to-end error, the labels are not what is wrong."""
    errors = _true_label_means(head, result.chi_ppm, result.mask) - _true_label_means(
        head, head.true_chi_ppm, head.brain_mask
    )
    return _offset_removed(errors)


def dice_on_reconstructed_map(
    head: VariedHead, gre: Acquisition, result: QSMResult
) -> dict[str, float]:
    """Dice per structure side of our labels on `result` (`direct_reconstruction` of `gre`),
    segmented as the product segments it (first-echo magnitude, the map's mask, the head's
    T1 when it has one). The cohort tests segment a simulated measured map; this is the
    reconstructed one, whose smooth errors can mislead the deformable stage."""
    t1 = (head.t1, head.t1_affine_ras) if head.t1 is not None else None
    settings = load_settings(None).segmentation
    segmentation = segment_deep_grey(
        gre.magnitude[..., 0], result.affine_ras, result.mask, settings, result.chi_ppm, t1=t1
    )
    dice = dice_per_structure(segmentation.labels, head.labels)
    return {name: dice[name] for name in REPORTED_NAMES}


def _true_label_measurements(
    head: VariedHead, chi_ppm: np.ndarray, brain: np.ndarray
) -> StructureMeasurements:
    """Statistics (mean ppb referenced to `brain`, label volume ml) of `chi_ppm` over the
    head's true labels, per side and bilateral, measured as the product measures its own
    labels."""
    voxel_mm = tuple(float(v) for v in np.linalg.norm(head.affine_ras[:3, :3], axis=0))
    return measure_structures(
        chi_ppm,
        head.labels,
        LABEL_NAMES,
        brain,
        voxel_mm,
        "whole_brain",
        load_settings(None).segmentation.roi_erode_voxels,
    )


def _true_label_means(head: VariedHead, chi_ppm: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """Per-side means (ppb) of `chi_ppm` over the head's true labels, referenced to `brain`."""
    stats = _true_label_measurements(head, chi_ppm, brain).per_side
    return np.array([stats[name].mean_ppb for name in REPORTED_NAMES])
