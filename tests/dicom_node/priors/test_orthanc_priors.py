"""Prior fetch against a real Orthanc as the PACS.

Orthanc holds three earlier multi-echo GRE visits of one patient, an MPRAGE (GR\\IR) in one
of those studies, another patient's visit, and a third patient whose phase series also holds
an instance with truncated pixel data (our node refuses it, so that retrieve is partial).
The node queries by Patient ID and retrieves only the earlier GRE visits (C-MOVE to its
listener, or C-GET), and intake turns them into back-filled jobs; known studies are never
retrieved again. Reconstruction is left out here (retrieval + intake, the smallest
acquisitions); `benchmarks/priors_amendment.py` times the whole path to the amended report.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid
from sqlalchemy import select
from support.node_acquisitions import small_acquisition
from support.node_helpers import free_port
from support.node_peers import ORTHANC, OrthancPeer, running_orthanc, wait_for
from typer.testing import CliRunner

from dicom_node.cli import app
from dicom_node.db import open_node_db
from dicom_node.priors.fetch import plan_fetch, run_fetch
from dicom_node.priors.query import PriorQuery
from dicom_node.priors.requests import PriorFetch, queue_fetch
from dicom_node.priors.runner import PriorFetcher
from dicom_node.queue.leasing import WorkState
from dicom_node.receive.catalogue import Series
from dicom_node.receive.listener import Listener
from dicom_node.service.serve import Service
from dicom_node.service.status import service_status
from dicom_node.synthetic.modules import PatientIdentity
from dicom_node.synthetic.series import write_acquisition_series
from dicom_node.synthetic.structural import write_single_echo_series
from monitor.settings import Settings, load_settings

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not ORTHANC.exists(), reason="Orthanc (Debian package) not installed"),
]

PATIENT = "PRIORS-1"
EARLIER = [
    PatientIdentity(patient_id=PATIENT, study_date=f"{year}0301", accession_number=f"P{year}")
    for year in (2023, 2024, 2025)
]
OTHER = PatientIdentity(patient_id="OTHER-9", study_date="20250601", accession_number="O1")
PARTIAL = PatientIdentity(patient_id="PARTIAL-3", study_date="20250701", accession_number="X1")
NODE_AE, GET_AE, STRANGER_AE = "QSMMON", "QSMGET", "STRANGER"
SINCE = "20000101"


@pytest.fixture(scope="module")
def node_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory, node_port: int) -> Iterator[OrthancPeer]:
    """Orthanc preloaded; it knows our node (C-MOVE target) and a C-GET-only AE, and lets
    unknown AEs query and move (so a stranger learns that it is an unknown destination)."""
    root = tmp_path_factory.mktemp("pacs")
    acquisition = small_acquisition()
    files = [
        path
        for identity in (*EARLIER, OTHER, PARTIAL)
        for path in write_acquisition_series(
            acquisition, root / identity.accession_number, "siemens", identity
        )
    ]
    files += write_single_echo_series(
        acquisition.magnitude[..., 0],
        acquisition.affine_ras,
        root / "mprage",
        EARLIER[1],
        series_number=2,
        description="t1_mprage",
    )
    files.append(_truncated_copy_beside(files[-2 - acquisition.magnitude.shape[2]], root))
    modalities = {"qsm": (NODE_AE, node_port), "qsmget": (GET_AE, 1)}
    extra = {"DicomAlwaysAllowFind": True, "DicomAlwaysAllowMove": True}
    with running_orthanc(root, modalities, extra) as peer, peer.client() as client:
        for path in files:
            client.post("/instances", content=path.read_bytes()).raise_for_status()
        yield peer


def _truncated_copy_beside(path: Path, root: Path) -> Path:
    """A copy of one PARTIAL instance with half its pixel data, in the same series: the PACS
    stores it, our node refuses it (truncated_pixel_data), so that sub-operation fails."""
    ds = dcmread(path)
    assert ds.PatientID == PARTIAL.patient_id
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.InstanceNumber = 1000
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
    out = root / "truncated.dcm"
    ds.save_as(out, enforce_file_format=True)
    return out


def _settings(tmp_path: Path, pacs: OrthancPeer, ae: str, port: int, **priors: object) -> Settings:
    return load_settings(
        None,
        storage={"data_dir": tmp_path / "data"},
        node={"ae_title": ae, "port": port, "stable_after_s": 0.5},
        destinations=[pacs.destination(outputs=[])],
        priors={"enabled": True, "source": "pacs", "timeout_s": 20.0, **priors},
    )


def _catalogued_studies(settings: Settings) -> set[str]:
    with open_node_db(settings) as sessions, sessions() as session:
        return set(session.scalars(select(Series.study_uid)))


def _catalogued_series(settings: Settings) -> set[str]:
    with open_node_db(settings) as sessions, sessions() as session:
        return set(session.scalars(select(Series.series_uid)))


def _queue(settings: Settings, patient_id: str) -> None:
    with open_node_db(settings) as sessions, sessions() as session:
        queue_fetch(session, settings.priors, patient_id, "", SINCE, "20260301")
        session.commit()


def _only_fetch(settings: Settings) -> PriorFetch:
    with open_node_db(settings) as sessions, sessions() as session:
        (row,) = session.scalars(select(PriorFetch))
        return row


def test_move_brings_the_earlier_visits_through_intake(
    tmp_path: Path, pacs: OrthancPeer, node_port: int
) -> None:
    settings = _settings(tmp_path, pacs, NODE_AE, node_port)
    service = Service(settings)
    listener = Listener(settings, service.on_series_complete, sessions=service.sessions)
    fetcher = PriorFetcher(settings, service.sessions, "test:priors")
    with listener:
        with service.sessions() as session:
            queue_fetch(session, settings.priors, PATIENT, "", SINCE, "20260301")
            session.commit()
        assert fetcher.run_once()
        jobs = wait_for(
            lambda: (jobs := service.queue.recent()) and len(jobs) == 3 and jobs,
            60.0,
            "the three retrieved visits to be enqueued",
        )
    assert {job.study_uid for job in jobs} == {identity.study_uid for identity in EARLIER}
    assert all(len(job.payload["paths"]) == 48 for job in jobs)  # magnitude + phase
    assert _catalogued_studies(settings) == {identity.study_uid for identity in EARLIER}
    assert len(_catalogued_series(settings)) == 6  # not the MPRAGE, not the other patient
    row = _only_fetch(settings)
    assert row.state == WorkState.DONE
    assert row.outcome == {**row.outcome, "series": 6, "instances": 144, "studies_known": 0}
    service.engine.dispose()


def test_get_retrieves_once_and_a_dry_run_retrieves_nothing(
    tmp_path: Path, pacs: OrthancPeer
) -> None:
    settings = _settings(tmp_path, pacs, GET_AE, free_port(), retrieve="get", max_studies=2)
    query = PriorQuery(PATIENT, "", SINCE)
    with open_node_db(settings) as sessions:
        plan = plan_fetch(settings, sessions, query)
        assert plan.study_uids == [EARLIER[2].study_uid, EARLIER[1].study_uid]  # newest two
        assert len(plan.wanted) == 4
        assert _catalogued_studies(settings) == set()  # planning is the dry run
        outcome = run_fetch(settings, sessions, plan)
        assert outcome.completed == 96 and outcome.failed == 0
        assert _catalogued_studies(settings) == set(plan.study_uids)
        again = plan_fetch(settings, sessions, query)
    assert again.known_studies == 2
    assert again.study_uids == [EARLIER[0].study_uid]  # known studies are never retrieved twice


def test_unknown_move_destination_is_retried_and_shown(tmp_path: Path, pacs: OrthancPeer) -> None:
    settings = _settings(tmp_path, pacs, STRANGER_AE, free_port())
    _queue(settings, PATIENT)
    with open_node_db(settings) as sessions:
        assert PriorFetcher(settings, sessions, "test:priors").run_once()
    row = _only_fetch(settings)
    assert row.state == WorkState.PENDING and row.attempts == 1
    assert row.last_error == (
        "C-MOVE failed: status 0xC000; "
        "does the PACS know our AE title 'STRANGER' as a C-MOVE destination?"
    )
    (shown,) = service_status(settings)["prior_fetch_problems"]
    assert shown["state"] == "pending" and "C-MOVE destination" in shown["error"]
    assert _catalogued_studies(settings) == set()


def test_partial_get_is_retried(tmp_path: Path, pacs: OrthancPeer) -> None:
    settings = _settings(tmp_path, pacs, GET_AE, free_port(), retrieve="get", backoff_s=0.0)
    _queue(settings, PARTIAL.patient_id)
    with open_node_db(settings) as sessions:
        fetcher = PriorFetcher(settings, sessions, "test:priors")
        assert fetcher.run_once()
        assert fetcher.run_once()  # the partly catalogued study is retrieved again, not "known"
    row = _only_fetch(settings)
    assert row.state == WorkState.PENDING and row.attempts == 2
    assert row.started_study_uids == [PARTIAL.study_uid]
    assert row.last_error == "C-GET partly failed: 1 of 49 instance(s) not retrieved"
    assert _catalogued_studies(settings) == {PARTIAL.study_uid}  # what came is kept


def test_cli_dry_run_lists_what_would_be_retrieved(tmp_path: Path, pacs: OrthancPeer) -> None:
    config = tmp_path / "node.toml"
    config.write_text(
        f'[storage]\ndata_dir = "{tmp_path / "data"}"\n[node]\nae_title = "{GET_AE}"\n'
        f'[[destinations]]\nname = "pacs"\nkind = "dicom"\nhost = "127.0.0.1"\n'
        f'port = {pacs.dicom_port}\nae_title = "{pacs.ae_title}"\noutputs = []\n'
        '[priors]\nsource = "pacs"\n'
    )
    args = ["priors", "fetch", PATIENT, "--since", "2024", "--dry-run", "--config", str(config)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert (
        lines[-1]
        == "dry run: would retrieve 4 series in 2 studies; 0 matching studies already known"
    )
    assert {line.split()[2] for line in lines[:-1]} == {EARLIER[1].study_uid, EARLIER[2].study_uid}
    as_json = json.loads(CliRunner().invoke(app, [*args, "--json"]).stdout)
    assert as_json["dry_run"] is True and as_json["known_studies"] == 0
    wanted_studies = {s["study_uid"] for s in as_json["wanted"]}
    assert wanted_studies == {EARLIER[1].study_uid, EARLIER[2].study_uid}
    assert len(as_json["wanted"]) == 4
    assert '"event":"prior_query"' in result.stderr and PATIENT not in result.stderr
    assert _catalogued_studies(load_settings(config)) == set()
