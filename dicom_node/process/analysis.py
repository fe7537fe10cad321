"""The heavy, pure part of processing: reconstruction, segmentation and measurement on arrays.

Cut out of the pipeline so that it can run either inside the worker process or as a Ray task
on another machine (`dicom_node.process.compute`): it reads no file, writes none and touches
no database, so everything it needs travels in `AnalysisInput` (through Ray's object store)
and everything it makes comes back in `Analysis`. Tracking, outputs and the result row stay
on the node that holds the job's lease.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from monitor.segment.external import ExternalLabels
from monitor.settings import ReconSettings, SegmentationSettings
from monitor.types import Acquisition, QSMResult, T1Image

if TYPE_CHECKING:
    from monitor.measure import StructureMeasurements
    from monitor.recon.geometry_correction import CorrectedMap
    from monitor.segment.chi_model import ChiModel

Progress = Callable[[str], None]


@dataclass(frozen=True)
class AnalysisInput:
    """Arrays and the settings the heavy stage uses; no paths, no secrets."""

    acquisition: Acquisition
    recon: ReconSettings
    segmentation: SegmentationSettings
    external: ExternalLabels | None = None
    """A segmentation that came with the study (read on the node), used instead of the atlas."""
    external_refusal: str | None = None
    """Why the external segmentation the site asked for could not be read: nothing is
    measured then (numbers from the atlas would not be what the site configured)."""
    t1: T1Image | None = None
    """The same-session 3-D T1 found with the acquisition; atlas segmentation registers it."""


@dataclass(frozen=True)
class Analysis:
    """What the heavy stage made: the map, the statistics (ppb) and the segmentation verdict."""

    qsm: QSMResult
    structures: dict[str, Any]
    segmentation_qc: dict[str, Any]
    labels: np.ndarray | None
    ran_on: str = "local"
    """Where it ran: ``local``, or the Ray node id (status and tests show it)."""


def analyse(inputs: AnalysisInput, progress: Progress | None = None) -> Analysis:
    """Reconstruct, segment and measure one acquisition."""
    from monitor.recon.pipeline import reconstruct  # JAX loads only when work arrives

    qsm = reconstruct(inputs.acquisition, inputs.recon, progress=progress)
    structures, verdict, labels = measure_deep_grey(inputs, qsm, progress)
    return Analysis(qsm, structures, verdict, labels)


def measure_deep_grey(
    inputs: AnalysisInput, qsm: QSMResult, progress: Progress | None = None
) -> tuple[dict[str, Any], dict[str, Any], np.ndarray | None]:
    """Deep grey matter statistics (ppb), or none with the reason when segmentation QC fails:
    numbers from a failed segmentation must never reach a report. The labels (even failed
    ones) go on to the key image, where a reader sees what went wrong."""
    from monitor.measure import measure_structures, report_block
    from monitor.segment.pipeline import segment_deep_grey  # SimpleITK: load on demand

    if progress is not None:
        progress("segmentation")
    if inputs.external_refusal is not None:
        refused = {"method": "external", "reportable": False, "reason": inputs.external_refusal}
        return {}, refused, None
    segmentation = segment_deep_grey(
        inputs.acquisition.magnitude[..., 0],
        qsm.affine_ras,
        qsm.mask,
        inputs.segmentation,
        qsm.chi_ppm,
        inputs.external,
        t1=inputs.t1 if inputs.segmentation.method == "atlas" else None,
    )
    verdict = {
        "method": segmentation.method,
        "reportable": segmentation.reportable,
        "reason": segmentation.reason,
        "withheld": dict(segmentation.withheld),
        "registration_path": segmentation.qc.get("registration_path"),
        "b0_tilt_deg": segmentation.qc.get("b0_tilt_deg"),
    }
    if not segmentation.reportable:
        return {}, verdict, segmentation.labels

    def measured(chi_ppm: np.ndarray, mask: np.ndarray) -> StructureMeasurements:
        return measure_structures(
            chi_ppm,
            segmentation.labels,
            segmentation.label_names,
            mask,
            qsm.voxel_mm,
            qsm.reference,
            inputs.segmentation.roi_erode_voxels,
        )

    measurements = measured(qsm.chi_ppm, qsm.mask)
    if segmentation.chi_model is not None and qsm.reference == "whole_brain":
        if progress is not None:
            progress("geometry correction")
        corrected = geometry_corrected(segmentation.chi_model, measurements, qsm, inputs)
        uncorrected, measurements = measurements, measured(corrected.chi_ppm, corrected.mask)
        before = {**uncorrected.per_side, **uncorrected.bilateral}
        after = {**measurements.per_side, **measurements.bilateral}
        # reported = the map's value - this
        verdict["geometry_error_removed_ppb"] = {
            name: round(stats.mean_ppb - after[name].mean_ppb, 1)
            for name, stats in before.items()
            if np.isfinite(stats.mean_ppb) and np.isfinite(after[name].mean_ppb)
        }
    return plain_json(report_block(measurements)), verdict, segmentation.labels


def geometry_corrected(
    model: ChiModel, measurements: StructureMeasurements, qsm: QSMResult, inputs: AnalysisInput
) -> CorrectedMap:
    """The map the values are measured on (`monitor.recon.geometry_correction`), modelled
    with the registered template's brain and its nuclei at this visit's values as the map
    measured them (the loss of their own field scales with them)."""
    from monitor.recon.geometry_correction import geometry_corrected_map
    from monitor.segment.template import TYPICAL_CHI_PPM

    nuclei_ppm = {s: TYPICAL_CHI_PPM[s] for s in model.nuclei}  # withheld: typical value
    nuclei_ppm.update(
        {
            s: stats.mean_ppb / 1000.0
            for s, stats in measurements.bilateral.items()
            if np.isfinite(stats.mean_ppb)
        }
    )
    return geometry_corrected_map(model.chi_ppm(nuclei_ppm), qsm, inputs.acquisition, inputs.recon)


def plain_json(values: Mapping[str, Any]) -> dict[str, Any]:
    """Plain JSON values (NaN as null): records go into a JSON column and `--json` output."""
    return json.loads(json.dumps(dict(values), default=_plain), parse_constant=lambda _: None)


def _plain(value: Any) -> Any:
    """numpy scalars and arrays become Python values; anything else its text."""
    return value.tolist() if hasattr(value, "tolist") else str(value)
