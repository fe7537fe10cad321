"""Outbox routing, folder and webhook delivery, retries, dead letters and resend (no PACS)."""

from __future__ import annotations

from pathlib import Path

from support.delivery_helpers import (
    KEY,
    STUDY_UID,
    acquisition_outputs,
    delivery_settings,
    drain,
    http_receiver,
    make_outbox,
    store_result,
)
from support.node_helpers import free_port

from dicom_node.logs import uid_hash
from dicom_node.queue.leasing import WorkState


def closed_pacs() -> dict[str, object]:
    return {"name": "pacs", "kind": "dicom", "host": "127.0.0.1", "port": free_port(),
            "ae_title": "NOBODY"}  # fmt: skip


def test_each_kind_gets_exactly_its_outputs(db_url: str, tmp_path: Path) -> None:
    outputs = acquisition_outputs(tmp_path / "outputs" / "acq1")
    settings = delivery_settings(
        tmp_path,
        [
            closed_pacs(),
            {"name": "ehr", "kind": "fhir", "base_url": "http://127.0.0.1:9/fhir"},
            {"name": "drop", "kind": "folder", "path": tmp_path / "drop"},
            {"name": "pager", "kind": "webhook", "url": "http://127.0.0.1:9/hook"},
            {
                "name": "plots",
                "kind": "folder",
                "path": tmp_path / "p",
                "outputs": ["trend_plot_png"],
            },
        ],
    )
    outbox = make_outbox(settings, db_url)
    assert outbox.enqueue(KEY, STUDY_UID, outputs) == 8
    assert outbox.enqueue(KEY, STUDY_UID, outputs) == 0
    routed = {(row.destination, row.output) for row in outbox.rows()}
    assert routed == {
        ("pacs", "sr"),
        ("pacs", "qsm_mr_series"),
        ("ehr", "fhir_bundle"),
        ("drop", "sr"),
        ("drop", "qsm_mr_series"),
        ("drop", "fhir_bundle"),
        ("pager", "alert"),
        ("plots", "trend_plot_png"),
    }


def test_webhook_only_when_an_alert_was_written(db_url: str, tmp_path: Path) -> None:
    settings = delivery_settings(
        tmp_path, [{"name": "pager", "kind": "webhook", "url": "http://x"}]
    )
    outbox = make_outbox(settings, db_url)
    quiet = acquisition_outputs(tmp_path / "outputs" / "acq1", elevated=False)
    assert outbox.enqueue(KEY, STUDY_UID, quiet) == 0


def test_folder_destination_writes_under_study_and_acquisition(db_url: str, tmp_path: Path) -> None:
    outputs = acquisition_outputs(tmp_path / "outputs" / "acq1")
    settings = delivery_settings(
        tmp_path, [{"name": "drop", "kind": "folder", "path": tmp_path / "drop"}]
    )
    outbox = make_outbox(settings, db_url)
    outbox.enqueue(KEY, STUDY_UID, outputs)
    drain(outbox)
    assert outbox.counts()[WorkState.DONE] == 3
    target = tmp_path / "drop" / uid_hash(STUDY_UID) / "acq1"
    written = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    series = sorted(f"qsm_mr_series/{p.name}" for p in outputs["qsm_mr_series"].iterdir())
    assert written == sorted(["fhir-bundle.json", "sr.dcm", *series])
    assert (target / "sr.dcm").read_bytes() == outputs["sr"].read_bytes()
    assert not any(p.name.startswith(".") for p in target.rglob("*"))  # no temp files left


def test_webhook_posts_the_alert_with_auth_and_idempotency_key(db_url: str, tmp_path: Path) -> None:
    outputs = acquisition_outputs(tmp_path / "outputs" / "acq1")
    with http_receiver() as (url, recorded):
        hook = {"name": "pager", "kind": "webhook", "url": f"{url}/alerts",
                "auth": {"bearer_token": "s3cret"}}  # fmt: skip
        outbox = make_outbox(delivery_settings(tmp_path, [hook]), db_url)
        outbox.enqueue(KEY, STUDY_UID, outputs)
        drain(outbox)
    (request,) = recorded.requests
    assert request["path"] == "/alerts"
    assert request["headers"]["Authorization"] == "Bearer s3cret"
    assert request["headers"]["Idempotency-Key"] == "a1"
    assert request["json"]["level"] == "elevated"
    assert outbox.counts()[WorkState.DONE] == 1


def test_refusing_webhook_is_retried_then_dead_lettered(db_url: str, tmp_path: Path) -> None:
    outputs = acquisition_outputs(tmp_path / "outputs" / "acq1")
    with http_receiver() as (url, recorded):
        recorded.status = 503
        outbox = make_outbox(
            delivery_settings(tmp_path, [{"name": "pager", "kind": "webhook", "url": url}]),
            db_url,
        )
        outbox.enqueue(KEY, STUDY_UID, outputs)
        drain(outbox)
    assert len(recorded.requests) == 2
    (row,) = outbox.rows()
    assert row.state == WorkState.FAILED and row.attempts == 2
    assert row.last_error == "webhook 'pager' answered HTTP 503"


def test_closed_pacs_retries_then_dead_letters(db_url: str, tmp_path: Path) -> None:
    outbox = make_outbox(delivery_settings(tmp_path, [closed_pacs()]), db_url)
    outputs = acquisition_outputs(tmp_path / "outputs" / "acq1")
    outbox.enqueue(KEY, STUDY_UID, {"sr": outputs["sr"]})
    assert outbox.deliver_next("d")
    (row,) = outbox.rows()
    assert row.state == WorkState.PENDING and row.attempts == 1
    assert "association" in (row.last_error or "")
    assert outbox.deliver_next("d")
    assert not outbox.deliver_next("d")
    (dead,) = outbox.dead_letters()
    assert dead.state == WorkState.FAILED and dead.attempts == 2
    assert dead.study_uid == STUDY_UID and dead.output == "sr"


def test_requeue_study_resets_done_and_dead_rows_and_adds_new_destinations(
    db_url: str, tmp_path: Path
) -> None:
    outputs = acquisition_outputs(tmp_path / "outputs" / "acq1")
    drop = {"name": "drop", "kind": "folder", "path": tmp_path / "drop"}
    outbox = make_outbox(delivery_settings(tmp_path, [drop, closed_pacs()]), db_url)
    store_result(outbox, outputs)
    outbox.enqueue(KEY, STUDY_UID, outputs)
    drain(outbox)
    counts = outbox.counts()
    assert (counts[WorkState.DONE], counts[WorkState.FAILED]) == (3, 2)
    target = tmp_path / "drop" / uid_hash(STUDY_UID) / "acq1"
    before = {p: p.stat().st_mtime_ns for p in target.rglob("*") if p.is_file()}

    later = delivery_settings(
        tmp_path,
        [drop, closed_pacs(), {"name": "pager", "kind": "webhook", "url": "http://127.0.0.1:9"}],
    )
    outbox = make_outbox(later, db_url)
    assert outbox.requeue_study(STUDY_UID) == 6
    assert all(row.attempts == 0 and row.last_error is None for row in outbox.rows())
    assert outbox.requeue_study("1.2.3.999") == 0
    drain(outbox)
    after = {p: p.stat().st_mtime_ns for p in target.rglob("*") if p.is_file()}
    assert after.keys() == before.keys()  # same names: nothing new for the engine to pick up
    assert all(after[p] >= before[p] for p in before)


def test_webhook_refusing_the_content_dead_letters_at_once(db_url: str, tmp_path: Path) -> None:
    outputs = acquisition_outputs(tmp_path / "outputs" / "acq1")
    with http_receiver() as (url, recorded):
        recorded.status = 400
        outbox = make_outbox(
            delivery_settings(tmp_path, [{"name": "pager", "kind": "webhook", "url": url}]),
            db_url,
        )
        outbox.enqueue(KEY, STUDY_UID, outputs)
        drain(outbox)
    (dead,) = outbox.dead_letters()
    assert len(recorded.requests) == 1 and dead.attempts == 1


def test_output_removed_from_the_data_directory_dead_letters_at_once(
    db_url: str, tmp_path: Path
) -> None:
    outputs = acquisition_outputs(tmp_path / "outputs" / "acq1")
    drop = {"name": "drop", "kind": "folder", "path": tmp_path / "drop"}
    outbox = make_outbox(delivery_settings(tmp_path, [drop]), db_url)
    outbox.enqueue(KEY, STUDY_UID, {"sr": outputs["sr"]})
    outputs["sr"].unlink()
    drain(outbox)
    (dead,) = outbox.dead_letters()
    assert dead.attempts == 1
    assert dead.last_error == "output 'sr' is missing (sr.dcm)"


def test_a_delivery_failing_past_its_age_limit_is_dead_lettered(tmp_path: Path) -> None:
    """A receiver down for days: the row gives up by age, not only by attempt count."""
    from datetime import timedelta

    from sqlalchemy import update

    from dicom_node.deliver import Delivery

    settings = delivery_settings(tmp_path, [closed_pacs()])
    settings = settings.model_copy(
        update={"outbox": settings.outbox.model_copy(update={"max_attempts": 100})}
    )
    outbox = make_outbox(settings)
    outputs = acquisition_outputs(tmp_path / "outputs" / "acq1")
    outbox.enqueue(KEY, STUDY_UID, {"sr": outputs["sr"]})
    assert outbox.deliver_next("d")
    assert outbox.rows()[0].state == WorkState.PENDING
    with outbox.sessions() as session:  # queued four days ago
        old = outbox.rows()[0].created_at - timedelta(days=4)
        session.execute(update(Delivery).values(created_at=old))
        session.commit()
    assert outbox.deliver_next("d")
    (dead,) = outbox.dead_letters()
    assert dead.attempts == 2 < settings.outbox.max_attempts


def test_status_shows_each_destination_with_its_last_error_and_next_attempt(
    tmp_path: Path, caplog
) -> None:
    import logging

    settings = delivery_settings(tmp_path, [closed_pacs()])
    outbox = make_outbox(settings)
    outputs = acquisition_outputs(tmp_path / "outputs" / "acq1")
    outbox.enqueue(KEY, STUDY_UID, {"sr": outputs["sr"]})
    with caplog.at_level(logging.WARNING, logger="dicom_node.deliver.outbox"):
        assert outbox.deliver_next("d")

    summary = outbox.destination_summary()["pacs"]

    assert summary["counts"] == {"pending": 1}
    assert "association" in str(summary["last_error"])
    assert summary["next_attempt_at"] is not None
    (failed,) = [r for r in caplog.records if r.getMessage() == "delivery_failed"]
    assert "association" in failed.event_fields["reason"]
