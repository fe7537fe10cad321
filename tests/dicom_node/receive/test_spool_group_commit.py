"""Group commit: concurrent stores share one catalogue commit, and each returns only once its
own row is committed; a duplicate inside a batch does not cost the others their rows."""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from pydicom.uid import MRImageStorage, generate_uid
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError

import dicom_node.receive.spool
from dicom_node.db import create_schema, make_engine
from dicom_node.receive.catalogue import Instance, InstanceHeader
from dicom_node.receive.spool import Spool, StoreOutcome


def _held_stores(
    db_url: str, tmp_path: Path, headers: list[InstanceHeader]
) -> tuple[list[str], int, int]:
    """Store `headers` from one thread each while the catalogue lock is held, release it once
    all rows wait, and return (outcomes, commits, catalogued rows)."""
    engine = make_engine(db_url)
    spool = Spool(tmp_path / "spool", create_schema(engine))
    commits = []
    event.listen(engine, "commit", lambda _conn: commits.append(1))
    with ThreadPoolExecutor(len(headers)) as pool:
        with spool._catalogue_lock:
            futures = [pool.submit(spool.store, h, b"dicom bytes") for h in headers]
            deadline = time.monotonic() + 10
            while len(spool._waiting) < len(headers) and time.monotonic() < deadline:
                time.sleep(0.01)
            assert not any(f.done() for f in futures)  # nobody acknowledged before its commit
        outcomes = [_outcome(f) for f in futures]
    with spool.sessions() as session:
        rows = session.scalar(select(func.count(Instance.id)))
    engine.dispose()
    return outcomes, len(commits), rows


def _outcome(future: Future) -> str:
    """The store's outcome, or the name of the error it raised."""
    error = future.exception(timeout=10)
    return type(error).__name__ if error is not None else future.result().value


def _header(sop_uid: str, series_uid: str, study_uid: str) -> InstanceHeader:
    return InstanceHeader(sop_uid, MRImageStorage, study_uid, series_uid, instance_number=1)


def test_concurrent_stores_share_one_commit(db_url: str, tmp_path: Path) -> None:
    study, series = generate_uid(), generate_uid()
    headers = [_header(generate_uid(), series, study) for _ in range(4)]

    outcomes, commits, rows = _held_stores(db_url, tmp_path, headers)

    assert outcomes == [StoreOutcome.STORED.value] * 4
    assert commits == 1
    assert rows == 4


def test_duplicate_in_a_batch_is_settled_row_by_row(db_url: str, tmp_path: Path) -> None:
    study, series = generate_uid(), generate_uid()
    twice = generate_uid()
    headers = [_header(twice, series, study), _header(twice, series, study)]
    headers.append(_header(generate_uid(), series, study))

    outcomes, _, rows = _held_stores(db_url, tmp_path, headers)

    assert sorted(outcomes) == ["duplicate", "stored", "stored"]
    assert rows == 2


def test_failed_batch_commit_is_raised_in_every_waiting_thread(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_error(*_args: object) -> None:
        raise OperationalError("INSERT", {}, OSError(5, "Input/output error"))

    monkeypatch.setattr(dicom_node.receive.spool, "record_instance", disk_error)
    study, series = generate_uid(), generate_uid()
    headers = [_header(generate_uid(), series, study) for _ in range(3)]

    outcomes, commits, rows = _held_stores(db_url, tmp_path, headers)

    assert outcomes == ["OperationalError"] * 3  # the listener answers 0xA700 for each
    assert (commits, rows) == (0, 0)
