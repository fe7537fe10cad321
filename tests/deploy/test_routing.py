"""The deploy Orthanc routing (deploy/orthanc/*) for real: Debian's Orthanc runs the same Lua
script and routing settings as the compose file, and only multi-echo GRE reaches our listener."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid
from sqlalchemy import select
from support.deploy_files import ORTHANC_CONFIG
from support.node_acquisitions import small_acquisition
from support.node_helpers import free_port, mr_dataset
from support.node_peers import ORTHANC, running_orthanc, wait_for
from support.outputs_support import make_record, save

from dicom_node.assemble.study import assemble_study
from dicom_node.outputs.common import read_sources
from dicom_node.outputs.qsm_map import build_mr_derived_series, build_parametric_map
from dicom_node.outputs.sr import build_measurement_report
from dicom_node.receive.catalogue import Series
from dicom_node.receive.listener import Listener
from dicom_node.synthetic.modules import PatientIdentity
from dicom_node.synthetic.series import write_acquisition_series
from monitor.record import ProcessingRecord
from monitor.settings import Settings, load_settings

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not ORTHANC.exists(), reason="Orthanc (Debian package) not installed"),
]

ROUTING_SCRIPT = ORTHANC_CONFIG.parent / "route-gre.lua"


def _other_series(
    folder: Path,
    study_uid: str,
    scanning_sequence: str,
    echo_times_ms: list[float],
    derived: bool = False,
) -> list[Path]:
    """An MR series that must NOT be routed: one slice per echo time."""
    folder.mkdir(parents=True)
    series_uid = str(generate_uid())
    paths = []
    for number, te_ms in enumerate(echo_times_ms, start=1):
        ds = mr_dataset(study_uid, series_uid, number)
        ds.ScanningSequence = scanning_sequence
        ds.EchoTime = te_ms
        ds.EchoNumbers = number
        if derived:
            ds.ImageType = ["DERIVED", "SECONDARY", "P", "ND"]
        path = folder / f"{number:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _our_results(gre: list[Path], folder: Path) -> list[Path]:
    """qsm-monitor's own results for the GRE study, as its `pacs` destination stores them."""
    (assembled,) = assemble_study(gre).acquisitions
    record, sources = make_record(assembled), read_sources(assembled.reference_paths)
    chi_ppm = np.random.default_rng(3).normal(0.0, 0.05, assembled.acquisition.shape)
    affine, settings = assembled.acquisition.affine_ras, Settings()
    parametric_map = build_parametric_map(
        ProcessingRecord.from_json(record), sources, chi_ppm, affine, settings=settings
    )
    mr_series = build_mr_derived_series(
        ProcessingRecord.from_json(record), sources, chi_ppm, affine, settings=settings
    )
    report = build_measurement_report(
        ProcessingRecord.from_json(record), sources, parametric_map, settings=settings
    )
    objects = [*parametric_map, *mr_series, report]
    return [save(ds, folder / f"{number:03d}.dcm") for number, ds in enumerate(objects)]


def _series_uids(paths: list[Path]) -> set[str]:
    return {str(dcmread(p, stop_before_pixels=True).SeriesInstanceUID) for p in paths}


def test_orthanc_routes_only_multi_echo_gre_to_the_listener(tmp_path: Path) -> None:
    deploy_config = json.loads(ORTHANC_CONFIG.read_text())
    routing = deploy_config["QsmMonitorRouting"]
    identity = PatientIdentity()
    acquisition = small_acquisition(shape=(16, 12, 4, 3))
    classic = write_acquisition_series(acquisition, tmp_path / "gre", "siemens", identity)
    enhanced = write_acquisition_series(acquisition, tmp_path / "enh", "enhanced", identity)
    others = [
        *_other_series(tmp_path / "se", identity.study_uid, "SE", [15.0, 80.0]),
        *_other_series(tmp_path / "flash", identity.study_uid, "GR", [4.0, 4.0]),
        *_other_series(tmp_path / "epi", identity.study_uid, "GR\\EP", [12.0, 35.0]),
        *_other_series(tmp_path / "swi", identity.study_uid, "GR", [5.0, 20.0], derived=True),
        *_our_results(classic, tmp_path / "results"),
    ]
    wanted = _series_uids(classic) | _series_uids(enhanced)
    assert len(wanted) == 3 and len(_series_uids(others)) == 7

    node_port = free_port()
    settings = load_settings(
        None, storage={"data_dir": tmp_path / "data"}, node={"port": node_port}
    )
    extra = {
        "LuaScripts": [str(ROUTING_SCRIPT)],
        "QsmMonitorRouting": routing,
        "StableAge": 1,
    }
    modalities = {routing["Modality"]: (settings.node.ae_title, node_port)}
    expected_instances = len(classic) + len(enhanced)
    with (
        Listener(settings) as listener,  # bound first: Orthanc's free ports cannot take it
        running_orthanc(tmp_path, modalities, extra) as pacs,
        pacs.client() as client,
    ):
        # Non-GRE first: Orthanc announces stable series oldest first and runs Lua callbacks in
        # order, so once the GRE series have arrived the others have been judged too.
        for path in [*others, *classic, *enhanced]:
            client.post("/instances", content=path.read_bytes()).raise_for_status()

        def received() -> dict[str, int]:
            with listener.sessions() as session:
                rows = session.execute(select(Series.series_uid, Series.instance_count))
                return {uid: count for uid, count in rows}

        wait_for(
            lambda: sum(received().values()) >= expected_instances,
            30.0,
            "the GRE series to be routed",
        )
        jobs = [client.get(f"/jobs/{job}").json() for job in client.get("/jobs").json()]
        arrived = received()
    # A failing Lua callback would also forward nothing: the decoys must be judged, not crash.
    assert "Lua" not in "".join(
        line for line in pacs.log_path.read_text().splitlines() if line.startswith("E")
    )
    assert set(arrived) == wanted
    assert sum(arrived.values()) == expected_instances
    assert len(jobs) == len(wanted)
    assert {job["State"] for job in jobs} == {"Success"}
