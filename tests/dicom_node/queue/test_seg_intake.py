"""A DICOM SEG sent with the study: found by frame of reference, waited for while it arrives,
carried in the job, measured on by the worker, and kept for re-processing."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pydicom
import pytest
from sqlalchemy import select
from support.seg_helpers import write_seg

from dicom_node.assemble.seg_input import find_segmentation, split_segmentation
from dicom_node.assemble.study import assemble_study
from dicom_node.db import create_schema, database_url, make_engine, utcnow
from dicom_node.deliver.outbox import Outbox
from dicom_node.process.reprocess import reprocess_patient
from dicom_node.process.worker import Worker, settings_for_job
from dicom_node.queue.intake import enqueue_study
from dicom_node.queue.jobs import JobQueue
from dicom_node.queue.leasing import WorkState
from dicom_node.queue.results import results_for_study
from dicom_node.receive.catalogue import InstanceHeader, Series, record_instance
from dicom_node.receive.completion import find_complete_series
from dicom_node.synthetic.modules import PatientIdentity
from dicom_node.synthetic.series import write_acquisition_series
from monitor.phantom import PhantomConfig, simulate_phantom
from monitor.segment.evaluation import to_structure_ids
from monitor.settings import Settings, load_settings
from monitor.tracking.schema import open_history
from monitor.tracking.tables import Acquisition

IDENTITY = PatientIdentity()
SMALL_HEAD = PhantomConfig(
    shape=(48, 56, 40), voxel_mm=(3.0, 3.0, 3.0), n_echoes=2, field_margin_mm=9.0, supersample=False
)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], Path]:
    """A small simulated head as Siemens-style series, and a BINARY SEG of its true deep grey
    matter labels derived from the first-echo magnitude (as FastSurfer-to-DICOM would be)."""
    root = tmp_path_factory.mktemp("seg-study")
    phantom = simulate_phantom(SMALL_HEAD, 0)
    images = write_acquisition_series(phantom.acquisition, root / "images", "siemens", IDENTITY)
    sources = [pydicom.dcmread(p) for p in images]
    first_echo = sorted(
        (d for d in sources if d.SeriesNumber == 10 and int(d.EchoNumbers) == 1),
        key=lambda d: int(d.InstanceNumber),
    )
    truth = to_structure_ids(phantom.labels, phantom.label_names)
    return images, write_seg(first_echo, "BINARY", root / "seg.dcm", truth)


def test_seg_is_found_by_frame_and_split_from_the_images(study, tmp_path: Path) -> None:
    images, seg = study
    (assembled,) = assemble_study(images).acquisitions
    assert find_segmentation([*images[:3], seg], assembled.frame_of_reference_uid) == seg
    assert find_segmentation([seg], "1.2.3.4") is None
    assert find_segmentation(images[:3], assembled.frame_of_reference_uid) is None
    assert split_segmentation([*images[:2], seg]) == (images[:2], seg)
    nifti = tmp_path / "aseg.nii.gz"
    assert split_segmentation([images[0], nifti]) == ([images[0]], nifti)
    assert split_segmentation(images[:2]) == (images[:2], None)


def _settings(tmp_path: Path, db_url: str | None, **segmentation: object) -> Settings:
    return load_settings(
        None,
        storage={"data_dir": tmp_path / "data", "database_url": db_url},
        jobs={"backoff_s": 0.0},
        segmentation=segmentation,
    )


def _worker(settings: Settings) -> Worker:
    storage = settings.storage
    sessions = create_schema(make_engine(database_url(storage.data_dir, storage.database_url)))
    return Worker(settings, JobQueue(sessions, settings.jobs), Outbox(sessions, settings), "w")


def _catalogue(worker: Worker, paths: list[Path], when) -> None:
    with worker.queue.sessions() as session:
        for path in paths:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            header = InstanceHeader.from_dataset(ds, ds.SOPInstanceUID, ds.SOPClassUID)
            record_instance(session, header, str(path), when)
        session.commit()


def _complete(worker: Worker, now) -> None:
    with worker.queue.sessions() as session:
        find_complete_series(session, now, 60.0)
        session.commit()


def test_intake_waits_for_the_seg_then_carries_it_in_the_job(
    study, tmp_path: Path, db_url: str
) -> None:
    images, seg = study
    worker = _worker(_settings(tmp_path, db_url))
    start = utcnow()
    _catalogue(worker, images, start)
    _catalogue(worker, [seg], start + timedelta(minutes=5))  # still arriving at start + 2 min

    _complete(worker, start + timedelta(minutes=2))
    assert enqueue_study(worker.queue.sessions, worker.queue, IDENTITY.study_uid) == []
    assert worker.queue.counts().get(WorkState.PENDING, 0) == 0

    _complete(worker, start + timedelta(minutes=10))
    (job,) = enqueue_study(worker.queue.sessions, worker.queue, IDENTITY.study_uid)
    assert sorted(job.payload["paths"]) == sorted(str(p) for p in [*images, seg])
    with worker.queue.sessions() as session:
        states = set(session.scalars(select(Series.state)))
    assert states == {"assembled"}  # the SEG series too: not announced again after restart


@pytest.mark.slow
def test_worker_measures_on_the_received_seg_and_reprocessing_keeps_it(
    study, tmp_path: Path, db_url: str
) -> None:
    images, seg = study
    settings = _settings(tmp_path, db_url)
    worker = _worker(settings)
    (assembled,) = assemble_study(images).acquisitions
    paths = [str(p) for p in [*images, seg]]
    worker.queue.enqueue(assembled.idempotency_key, IDENTITY.study_uid, {"paths": paths})

    assert worker.run_once()

    (result,) = results_for_study(worker.queue.sessions, IDENTITY.study_uid)
    assert result.record.get("error") is None, result.record.get("error")
    verdict = result.record["qc"]["segmentation"]
    assert verdict == {
        "method": "external",
        "reportable": True,
        "reason": "",
        "withheld": {},
        "registration_path": None,
        "b0_tilt_deg": None,  # no registration: no head pose measured
    }
    with open_history(settings) as sessions, sessions() as session:
        (inputs,) = session.scalars(select(Acquisition.input_paths))
    assert str(seg) in inputs  # kept with the images, so re-processing uses it again

    (again,) = reprocess_patient(settings, IDENTITY.patient_id)
    assert again["qc"]["segmentation"] == verdict
    assert again["structures"] == result.record["structures"]


def test_received_seg_is_ignored_when_the_site_switches_it_off(study, tmp_path: Path) -> None:
    """Checked without reconstructing: the settings the worker would process with."""
    images, seg = study
    off = _settings(tmp_path, None, use_received_segmentation=False)
    on = _settings(tmp_path, None)
    assert settings_for_job(off, [*images, seg])[1].segmentation.method == "atlas"
    chosen = settings_for_job(on, [*images, seg])[1].segmentation
    assert (chosen.method, chosen.external_path) == ("external", seg)
