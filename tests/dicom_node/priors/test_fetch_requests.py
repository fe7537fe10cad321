"""Prior fetch requests without a PACS: when one is queued, retries when the PACS is down or
refuses us, what `status` shows, the settings' checks and the command line's dry run."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from sqlalchemy import select
from support.node_helpers import free_port
from typer.testing import CliRunner

from dicom_node.cli import app
from dicom_node.db import open_node_db, utcnow
from dicom_node.priors.errors import PriorsError
from dicom_node.priors.requests import PriorFetch, PriorFetches, queue_fetch
from dicom_node.priors.retrieve import retrieve_outcome
from dicom_node.priors.runner import PriorFetcher
from dicom_node.priors.trigger import request_priors
from dicom_node.queue.leasing import WorkState
from dicom_node.receive.listener import Listener
from dicom_node.service.status import service_status
from monitor.settings import ConfigError, Settings, load_settings
from monitor.tracking.tables import Patient, Visit


def _settings(tmp_path: Path, port: int, ae_title: str = "PACS", **priors: object) -> Settings:
    source = {"name": "pacs", "kind": "dicom", "host": "127.0.0.1", "port": port}
    return load_settings(
        None,
        storage={"data_dir": tmp_path / "data"},
        destinations=[{**source, "ae_title": ae_title, "outputs": []}],
        priors={"enabled": True, "source": "pacs", "timeout_s": 3.0, "backoff_s": 60.0, **priors},
    )


def _tracked_visit(settings: Settings, study_uid: str, patient_id: str = "P-1") -> None:
    with open_node_db(settings) as sessions, sessions() as session:
        patient = session.scalar(select(Patient).where(Patient.identifier == patient_id))
        if patient is None:
            patient = Patient(identifier=patient_id, issuer="H", created_at=utcnow())
            session.add(patient)
        session.add(
            Visit(
                patient=patient,
                study_uid=study_uid,
                study_datetime=datetime(2026, 3, 1, 9),
                identity_status="confirmed",
            )
        )
        session.commit()


def _request(settings: Settings, study_uid: str, previous: str | None = None) -> bool:
    with open_node_db(settings) as sessions, sessions() as session:
        row = request_priors(session, settings, study_uid, {"previous_study_uid": previous})
        session.commit()
        return row is not None


def _fetches(settings: Settings) -> list[PriorFetch]:
    with open_node_db(settings) as sessions, sessions() as session:
        return list(session.scalars(select(PriorFetch).order_by(PriorFetch.id)))


def test_a_visit_without_comparable_prior_queues_one_fetch_per_interval(tmp_path: Path) -> None:
    settings = _settings(tmp_path, free_port(), interval_days=30)
    for uid in ("1.2.3.1", "1.2.3.2", "1.2.3.3"):
        _tracked_visit(settings, uid)
    assert not _request(settings, "1.2.3.1", previous="1.2.3.0")  # has a comparable prior
    assert not _request(settings, "9.9.9")  # untracked: no patient to ask for
    assert _request(settings, "1.2.3.2")
    assert not _request(settings, "1.2.3.3")  # same patient, within the interval
    (row,) = _fetches(settings)
    assert (row.patient_id, row.issuer, row.until) == ("P-1", "H", "20260301")
    assert row.trigger_study_uid == "1.2.3.2"
    with open_node_db(settings) as sessions, sessions() as session:
        later = utcnow() + timedelta(days=31)
        assert queue_fetch(session, settings.priors, "P-1", "H", "2000", now=later) is not None


def test_nothing_is_queued_while_priors_are_off(tmp_path: Path) -> None:
    settings = load_settings(None, storage={"data_dir": tmp_path / "data"})
    _tracked_visit(settings, "1.2.3.1")
    assert not _request(settings, "1.2.3.1")


def test_unreachable_pacs_is_retried_with_backoff_and_shown(tmp_path: Path) -> None:
    settings = _settings(tmp_path, free_port())
    with open_node_db(settings) as sessions, sessions() as session:
        queue_fetch(session, settings.priors, "P-1", "", "20000101")
        session.commit()
    with open_node_db(settings) as sessions:
        fetcher = PriorFetcher(settings, sessions, "test:priors")
        assert fetcher.run_once()
        assert not fetcher.run_once()  # not due again before the backoff
        assert PriorFetches(sessions, settings.priors).counts()[WorkState.PENDING] == 1
    (row,) = _fetches(settings)
    assert row.state == WorkState.PENDING and row.attempts == 1
    assert row.next_attempt_at > utcnow() + timedelta(seconds=50)
    assert "was rejected or could not be opened" in (row.last_error or "")
    report = service_status(settings)
    assert report["prior_fetch_counts"][WorkState.PENDING] == 1
    (shown,) = report["prior_fetch_problems"]
    assert shown["attempts"] == 1 and "could not be opened" in shown["error"]


def test_a_refused_association_is_a_retried_failure(tmp_path: Path) -> None:
    """Our own listener plays a PACS that refuses an unknown called AE title."""
    port = free_port()
    pacs = load_settings(None, storage={"data_dir": tmp_path / "pacs"}, node={"port": port})
    settings = _settings(tmp_path, port, ae_title="NOT-THE-PACS", max_attempts=1)
    with open_node_db(settings) as sessions, sessions() as session:
        queue_fetch(session, settings.priors, "P-1", "", "20000101")
        session.commit()
    with Listener(pacs), open_node_db(settings) as sessions:
        assert PriorFetcher(settings, sessions, "test:priors").run_once()
    (row,) = _fetches(settings)
    assert row.state == WorkState.FAILED  # its last attempt: given up, still listed
    assert row.last_error == (
        f"association to 'pacs' (127.0.0.1:{port}) was rejected or could not be opened"
    )


def test_move_destination_unknown_names_the_fix() -> None:
    status = Dataset()
    status.Status = 0xA801
    with pytest.raises(PriorsError, match="does not know our AE title 'QSMMON'"):
        retrieve_outcome(status, "QSMMON", "move")
    status.Status = 0xB000
    status.NumberOfFailedSuboperations = 2
    assert retrieve_outcome(status, "QSMMON", "move").failed == 2  # counted, then raised


def test_the_source_must_be_a_dicom_destination(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="priors.source must name a destination of kind dicom"):
        load_settings(None, priors={"enabled": True, "source": "nowhere"})
    with pytest.raises(ConfigError, match="unknown setting priors.lookback"):
        load_settings(None, priors={"lookback": 3})


def test_cli_reports_an_unreachable_pacs_in_one_line(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "node.toml"
    config.write_text(
        f'[storage]\ndata_dir = "{tmp_path / "data"}"\n'
        f'[[destinations]]\nname = "pacs"\nkind = "dicom"\nhost = "127.0.0.1"\nport = {port}\n'
        'ae_title = "PACS"\noutputs = []\n'
        '[priors]\nenabled = true\nsource = "pacs"\ntimeout_s = 2.0\n'
    )
    result = CliRunner().invoke(
        app, ["priors", "fetch", "P-1", "--dry-run", "--since", "2020", "--config", str(config)]
    )
    assert result.exit_code != 0
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: association to 'pacs' (127.0.0.1:{port}) was rejected or could not be opened"
    )
    assert "P-1" not in result.stderr  # the audit events carry a hash, never the Patient ID
