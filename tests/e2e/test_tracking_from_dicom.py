"""End to end from DICOM: an MS patient's three yearly visits and a stable control's two.

Each visit is simulated (`monitor.phantom.cohort`), written as Siemens-style DICOM series, and
run through `qsm-monitor process`'s code path (assembly, reconstruction, segmentation,
measurement, tracking, outputs) with one shared data directory, so the history builds up
visit by visit. The truth of a change is the change of the true map's ROI means.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

import pytest

from dicom_node.process.batch import process_paths
from dicom_node.synthetic.modules import PatientIdentity
from dicom_node.synthetic.series import write_acquisition_series
from monitor.phantom import simulate_phantom
from monitor.phantom.cohort import longitudinal_cohort, true_roi_means_ppb
from monitor.segment.structures import STRUCTURES
from monitor.settings import load_settings

pytestmark = pytest.mark.slow

CHANGE_TOLERANCE_PPB = 3.0


@pytest.fixture(scope="module")
def processed(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Any, dict, dict]]:
    """(cohort visit, record, true ROI means) per visit, in processing order."""
    root = tmp_path_factory.mktemp("cohort")
    settings = load_settings(None, storage={"data_dir": root / "data"})
    results = []
    started = time.perf_counter()
    for index, visit in enumerate(longitudinal_cohort(3, 2)):
        phantom = simulate_phantom(visit.config, visit.noise_seed)
        folder = root / f"visit{index}"
        identity = PatientIdentity(**asdict(visit.identity))
        write_acquisition_series(phantom.acquisition, folder, "siemens", identity)
        (record,) = process_paths([folder], settings)
        assert record["error"] is None, record["error"]
        truth = true_roi_means_ppb(phantom, settings.segmentation.roi_erode_voxels)
        results.append((visit, record, truth))
    print(f"\n5 visits from DICOM in {time.perf_counter() - started:.0f} s")
    return results


def _changes(processed, subject: str) -> list[dict[str, tuple[float, float]]]:
    """Per follow-up visit: structure -> (measured change, true change) since the previous."""
    visits = [(record, truth) for visit, record, truth in processed if visit.subject == subject]
    return [
        {
            name: (record["structures"][name]["change_ppb"], truth[name] - previous[name])
            for name in STRUCTURES
        }
        for (_, previous), (record, truth) in zip(visits, visits[1:], strict=False)
    ]


def test_every_visit_is_measured_and_tracked(processed) -> None:
    for visit, record, _ in processed:
        assert record["qc"]["segmentation"]["reportable"], record["qc"]["segmentation"]["reason"]
        assert record["identity_status"] == "confirmed"
        assert record["comparable"] is True
        assert record["study_uid"] == visit.identity.study_uid
        sides = record["structures"]["thalamus"]["sides"]
        assert sides["left"]["voxel_count"] > 0 and sides["right"]["z"] is not None
    uids = {v.subject: [] for v, _, _ in processed}
    for visit, record, _ in processed:
        assert record["previous_study_uid"] == (uids[visit.subject] or [None])[-1]
        uids[visit.subject].append(record["study_uid"])


def test_changes_are_within_3_ppb_of_the_truth(processed) -> None:
    for subject in ("patient", "control"):
        for follow_up in _changes(processed, subject):
            errors = {name: abs(m - t) for name, (m, t) in follow_up.items()}
            print(subject, {name: f"{m:+.1f} vs {t:+.1f}" for name, (m, t) in follow_up.items()})
            assert max(errors.values()) <= CHANGE_TOLERANCE_PPB, follow_up


def test_patient_is_elevated_and_control_is_not(processed) -> None:
    patient = [r for v, r, _ in processed if v.subject == "patient"]
    control = [r for v, r, _ in processed if v.subject == "control"]
    for record in patient[1:]:
        assert record["risk"]["level"] == "elevated", record["risk"]["reasons"]
        assert any("is falling" in reason for reason in record["risk"]["reasons"])
    last = patient[-1]["structures"]
    assert last["thalamus"]["annual_change_ppb_per_year"] < 0
    assert last["globus_pallidus"]["annual_change_ppb_per_year"] > 0
    assert last["thalamus"]["reliable_change_from_baseline"] is True
    assert last["globus_pallidus"]["reliable_change_from_baseline"] is True
    for record in control:
        assert record["risk"]["level"] == "not elevated", record["risk"]["reasons"]
    assert not any(control[1]["structures"][name]["reliable_change"] for name in STRUCTURES)
