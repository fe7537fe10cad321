"""End to end through `qsm-monitor serve`: a study sent by DICOM comes out as SR, QSM map
series and key images in a real PACS (Orthanc, read back through its REST API), as a FHIR
transaction at the recording FHIR endpoint and as files in a folder; `qsm-monitor resend`
then delivers everything again and no receiver gets anything twice."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import UID
from support.delivery_helpers import (
    QSM_MONITOR,
    make_outbox,
    segmentation_config,
    serving,
    small_study,
)
from support.fhir_server import FhirTestServer
from support.node_helpers import free_port, storescu
from support.node_peers import ORTHANC, OrthancPeer, running_orthanc, wait_for
from support.outputs_support import STRUCTURES, reported_numbers, validator_errors
from support.recon_simulation import SHAPE

from dicom_node.deliver.items import DeliveryItem
from dicom_node.deliver.outbox import Outbox
from dicom_node.deliver.sender import is_dicom_file
from dicom_node.logs import uid_hash
from dicom_node.queue.leasing import WorkState
from dicom_node.queue.results import Result, results_for_study
from dicom_node.service.status import echo
from dicom_node.synthetic.modules import PatientIdentity
from monitor.settings import load_settings

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not ORTHANC.exists(), reason="Orthanc (Debian package) not installed"),
]

IDENTITY = PatientIdentity(patient_id="DELIVERY-0007", study_date="20260310")


def write_config(tmp_path: Path, port: int, pacs: OrthancPeer, ehr_url: str, labels: Path) -> Path:
    config = tmp_path / "qsm-monitor.toml"
    config.write_text(
        f"""
[node]
port = {port}
stable_after_s = 1.0

[storage]
data_dir = "{tmp_path / "data"}"

[jobs]
lease_s = 60.0
poll_interval_s = 0.2

[outbox]
backoff_s = 0.5
poll_interval_s = 0.2

[recon]
tv_iterations = 10

[[destinations]]
name = "pacs"
kind = "dicom"
host = "127.0.0.1"
port = {pacs.dicom_port}
ae_title = "{pacs.ae_title}"

[[destinations]]
name = "ehr"
kind = "fhir"
base_url = "{ehr_url}"

[[destinations]]
name = "drop"
kind = "folder"
path = "{tmp_path / "drop"}"
"""
        + segmentation_config(labels)
    )
    return config


def all_delivered(outbox: Outbox) -> Result | None:
    """The study's result once every routed output of it is delivered."""
    results = results_for_study(outbox.sessions, IDENTITY.study_uid)
    if not results:
        return None
    outputs = results[0].record["outputs"]
    routed = sum(n in d.routed_outputs for d in outbox.settings.destinations for n in outputs)
    rows = [row for row in outbox.rows() if row.state == WorkState.DONE]
    return results[0] if len(rows) == routed else None


def delivered_dicom(result: Result, outbox: Outbox) -> dict[str, str]:
    """SOP Instance UID -> SOP Class UID of every DICOM object routed to the PACS."""
    (pacs,) = [d for d in outbox.settings.destinations if d.name == "pacs"]
    found = {}
    for name, path in result.record["outputs"].items():
        if name in pacs.routed_outputs:
            for file in DeliveryItem(name, Path(path), IDENTITY.study_uid).files():
                if is_dicom_file(file):
                    ds = dcmread(file, stop_before_pixels=True)
                    found[ds.SOPInstanceUID] = ds.SOPClassUID
    return found


def orthanc_instances(pacs: OrthancPeer) -> dict[str, dict[str, str]]:
    with pacs.client() as client:
        instances = client.get("/instances", params={"expand": "true"}).json()
    return {i["MainDicomTags"]["SOPInstanceUID"]: i for i in instances}


def new_instance_events(pacs: OrthancPeer) -> int:
    with pacs.client() as client:
        changes = client.get("/changes", params={"limit": 10000}).json()["Changes"]
    return sum(change["ChangeType"] == "NewInstance" for change in changes)


def fetch(pacs: OrthancPeer, orthanc_id: str, target: Path) -> Path:
    with pacs.client() as client:
        target.write_bytes(client.get(f"/instances/{orthanc_id}/file").content)
    return target


def test_serve_delivers_every_output_once_and_resend_duplicates_nothing(
    tmp_path: Path,
) -> None:
    files, labels = small_study(tmp_path / "in", IDENTITY)
    port = free_port()
    with (
        running_orthanc(tmp_path, {}) as pacs,
        FhirTestServer() as ehr,
    ):
        config = write_config(tmp_path, port, pacs, ehr.base_url, labels)
        outbox = make_outbox(load_settings(config))
        with serving(config, tmp_path / "serve.log"):
            wait_for(lambda: echo("127.0.0.1", port, "QSMMON"), 60.0, "the listener")
            assert storescu(port, files).returncode == 0
            result = wait_for(
                lambda: all_delivered(outbox), 240.0, "every delivery", interval_s=0.5
            )
            record = result.record

            # PACS: exactly our objects, in the source study, read back over REST.
            sent = delivered_dicom(result, outbox)
            stored = orthanc_instances(pacs)
            assert set(stored) == set(sent)
            classes = sorted(UID(c).name for c in sent.values())
            assert classes.count("MR Image Storage") == SHAPE[2]
            # overlay, trend and report page; the report page also as a PDF (issue 15)
            assert classes.count("Secondary Capture Image Storage") == 3
            assert classes.count("Encapsulated PDF Storage") == 1
            assert {"Comprehensive 3D SR Storage", "Parametric Map Storage"} <= set(classes)
            with pacs.client() as client:
                (study,) = client.get("/studies", params={"expand": "true"}).json()
            assert study["MainDicomTags"]["StudyInstanceUID"] == IDENTITY.study_uid
            assert study["PatientMainDicomTags"]["PatientID"] == IDENTITY.patient_id
            one_of_each = {UID(cls).name: stored[uid]["ID"] for uid, cls in sent.items()}
            for name, orthanc_id in one_of_each.items():  # as the PACS serves them
                received = fetch(pacs, orthanc_id, tmp_path / f"{orthanc_id}.dcm")
                assert validator_errors(received) == [], name
            sr_file = tmp_path / f"{one_of_each['Comprehensive 3D SR Storage']}.dcm"
            numbers = reported_numbers(dcmread(sr_file))
            for structure in STRUCTURES:
                bilateral = numbers[(structure, "bilateral")]["mean_ppb"]
                assert bilateral == round(record["structures"][structure]["mean_ppb"], 1)

            # EHR: one transaction with every structure's observations; folder: the files.
            assert len(ehr.transactions()) == 1
            assert ehr.count("DiagnosticReport") == 1
            assert ehr.count("Observation") == 3 * len(STRUCTURES)
            fhir_resources = ehr.count()
            acquisition = Path(record["outputs"]["sr"]).parent
            dropped = tmp_path / "drop" / uid_hash(IDENTITY.study_uid) / acquisition.name
            assert (dropped / "sr.dcm").read_bytes() == Path(record["outputs"]["sr"]).read_bytes()
            bundle = json.loads((dropped / "fhir-bundle.json").read_text())
            assert bundle["type"] == "transaction"

            # Resend through the CLI while the service runs: delivered again, stored once.
            events = new_instance_events(pacs)
            resend = subprocess.run(
                [str(QSM_MONITOR), "resend", IDENTITY.study_uid, "--config", str(config)],
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert resend.returncode == 0, resend.stderr
            wait_for(lambda: len(ehr.transactions()) == 2, 60.0, "the resent Bundle")
            wait_for(lambda: all_delivered(outbox), 60.0, "every resent delivery")
            assert set(orthanc_instances(pacs)) == set(sent)
            assert new_instance_events(pacs) == events
            assert ehr.count() == fhir_resources

            status = subprocess.run(
                [str(QSM_MONITOR), "status", "--config", str(config), "--json"],
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert status.returncode == 0, status.stderr
            report = json.loads(status.stdout)
            assert report["dead_letters"] == []
            assert report["delivery_counts"][WorkState.DONE] == len(outbox.rows())

        # The service's whole log (listener, workers, deliverer) names no patient or study.
        log = (tmp_path / "serve.log").read_text(errors="replace")
        assert '"event":"job_done"' in log
        identifying = {
            "patient ID": IDENTITY.patient_id,
            "patient name": IDENTITY.patient_name,
            "birth date": IDENTITY.birth_date,
            "study date": IDENTITY.study_date,
            "study UID": IDENTITY.study_uid,
            "accession": IDENTITY.accession_number,
        }
        leaked = [what for what, value in identifying.items() if value in log]
        assert leaked == [], leaked
