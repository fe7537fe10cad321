"""Delivery to a real PACS (Orthanc, Debian package, loopback) that goes down and comes back."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydicom import dcmread
from support.delivery_helpers import (
    KEY,
    STUDY_UID,
    acquisition_outputs,
    delivery_settings,
    drain,
    make_outbox,
    store_result,
)
from support.node_helpers import free_port
from support.node_peers import ORTHANC, OrthancPeer, running_orthanc

from dicom_node.deliver.items import DeliveryItem
from dicom_node.queue.leasing import WorkState

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not ORTHANC.exists(), reason="Orthanc (Debian package) not installed"),
]


def stored_sop_uids(pacs: OrthancPeer) -> list[str]:
    with pacs.client() as client:
        instances = client.get("/instances", params={"expand": "true"}).json()
    return sorted(i["MainDicomTags"]["SOPInstanceUID"] for i in instances)


def new_instance_events(pacs: OrthancPeer) -> int:
    """Orthanc logs a NewInstance change only for an instance it did not have: a resent copy
    of a stored SOP Instance UID adds none."""
    with pacs.client() as client:
        changes = client.get("/changes", params={"limit": 1000}).json()["Changes"]
    return sum(change["ChangeType"] == "NewInstance" for change in changes)


def sop_uids(outputs: dict[str, Path]) -> list[str]:
    files = [
        f for name in ("sr", "qsm_mr_series") for f in DeliveryItem(name, outputs[name], "").files()
    ]
    return [dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in files]


def test_pacs_down_when_result_is_ready_gets_it_once_back_and_nothing_twice(
    tmp_path: Path,
) -> None:
    ports = (free_port(), free_port())
    pacs_config = {"name": "pacs", "kind": "dicom", "host": "127.0.0.1", "port": ports[1],
                   "ae_title": "TESTPACS"}  # fmt: skip
    settings = delivery_settings(tmp_path, [pacs_config])
    settings.outbox.backoff_s, settings.outbox.max_attempts = 0.5, 5
    outbox = make_outbox(settings)
    first = acquisition_outputs(tmp_path / "outputs" / "acq1")
    later = acquisition_outputs(tmp_path / "outputs" / "acq2")
    store_result(outbox, first)

    with running_orthanc(tmp_path, {}, ports=ports) as pacs:
        outbox.enqueue(KEY, STUDY_UID, first)
        drain(outbox)
        assert stored_sop_uids(pacs) == sorted(sop_uids(first))

    outbox.enqueue("later-key", "1.2.826.0.1.3680043.8.498.2", later)  # PACS is down now
    assert outbox.deliver_next("d")
    waiting = [row for row in outbox.rows() if row.source_key == "later-key"]
    assert {row.state for row in waiting} == {WorkState.PENDING}
    assert any("association" in (row.last_error or "") for row in waiting)

    with running_orthanc(tmp_path, {}, ports=ports) as pacs:
        time.sleep(2 * settings.outbox.backoff_s)  # the retry is due
        drain(outbox)
        assert outbox.counts()[WorkState.DONE] == 4
        assert stored_sop_uids(pacs) == sorted(sop_uids(first) + sop_uids(later))
        by_key = {(row.source_key, row.output): row.attempts for row in outbox.rows()}
        assert by_key[(KEY, "sr")] == by_key[(KEY, "qsm_mr_series")] == 1  # not resent
        assert max(by_key[("later-key", o)] for o in ("sr", "qsm_mr_series")) == 2

        assert outbox.requeue_study(STUDY_UID) == 2  # resend: same SOP Instance UIDs
        drain(outbox)
        assert outbox.counts()[WorkState.DONE] == 4
        assert stored_sop_uids(pacs) == sorted(sop_uids(first) + sop_uids(later))
        assert new_instance_events(pacs) == len(sop_uids(first) + sop_uids(later))
