"""Series completion: by stability, by a trusted expected count, and the poller's hand-over."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from pydicom.uid import MRImageStorage, generate_uid
from sqlalchemy.orm import sessionmaker

from dicom_node.db import create_schema, make_engine
from dicom_node.receive.catalogue import InstanceHeader, Series, SeriesState, record_instance
from dicom_node.receive.completion import (
    MAX_HOOK_ATTEMPTS,
    CompletionPoller,
    SeriesKey,
    find_complete_series,
    stuck_series,
)

T0 = datetime(2026, 1, 1, 12, 0, 0)
STABLE_S = 30.0


@pytest.fixture
def sessions(db_url: str) -> sessionmaker:
    return create_schema(make_engine(db_url))


def receive(
    sessions: sessionmaker,
    key: SeriesKey,
    at: datetime,
    announced_total: int | None = None,
    number: int | None = None,
) -> None:
    """One instance; numbered after those already received unless `number` is given."""
    with sessions() as session:
        series = session.get(Series, key.series_uid)
        received = series.instance_count if series is not None else 0
    header = InstanceHeader(
        sop_uid=generate_uid(),
        sop_class=MRImageStorage,
        study_uid=key.study_uid,
        series_uid=key.series_uid,
        instance_number=received + 1 if number is None else number,
        images_in_acquisition=announced_total,
    )
    with sessions() as session:
        record_instance(session, header, f"/spool/{header.sop_uid}.dcm", at)
        session.commit()


def complete_at(sessions: sessionmaker, now: datetime) -> list[SeriesKey]:
    with sessions() as session:
        done = find_complete_series(session, now, STABLE_S)
        session.commit()
    return done


def state_of(sessions: sessionmaker, key: SeriesKey) -> str:
    with sessions() as session:
        series = session.get(Series, key.series_uid)
        assert series is not None
        return series.state


def new_key() -> SeriesKey:
    return SeriesKey(generate_uid(), generate_uid())


def test_series_completes_only_after_the_stability_window(sessions: sessionmaker) -> None:
    key = new_key()
    receive(sessions, key, T0)
    receive(sessions, key, T0 + timedelta(seconds=20))
    assert complete_at(sessions, T0 + timedelta(seconds=40)) == []
    assert complete_at(sessions, T0 + timedelta(seconds=51)) == [key]
    assert state_of(sessions, key) == SeriesState.COMPLETE
    assert complete_at(sessions, T0 + timedelta(seconds=90)) == []  # announced once


def test_series_completes_early_when_the_announced_count_is_reached(
    sessions: sessionmaker,
) -> None:
    key = new_key()
    for i in range(2):
        receive(sessions, key, T0 + timedelta(seconds=i), announced_total=3)
    assert complete_at(sessions, T0 + timedelta(seconds=2)) == []
    receive(sessions, key, T0 + timedelta(seconds=2), announced_total=3)
    assert complete_at(sessions, T0 + timedelta(seconds=2)) == [key]


@pytest.mark.parametrize("totals", [[2, 3, 3], [None, 2], [1, 1]], ids=str)
def test_inconsistent_or_exceeded_count_is_not_trusted(
    sessions: sessionmaker, totals: list[int | None]
) -> None:
    key = new_key()
    for total in totals:
        receive(sessions, key, T0, announced_total=total)
    assert complete_at(sessions, T0 + timedelta(seconds=1)) == []
    assert complete_at(sessions, T0 + timedelta(seconds=STABLE_S)) == [key]


@pytest.mark.parametrize(
    ("numbers", "total"), [([1, 2, 5], 3), ([1, 2, 1, 2], 4)], ids=["beyond-total", "repeated"]
)
def test_count_is_not_trusted_when_instance_numbers_do_not_fit(
    sessions: sessionmaker, numbers: list[int], total: int
) -> None:
    """E.g. a total that counts the slices of one echo while the series holds all echoes."""
    key = new_key()
    for number in numbers:
        receive(sessions, key, T0, announced_total=total, number=number)
    assert complete_at(sessions, T0 + timedelta(seconds=1)) == []
    assert complete_at(sessions, T0 + timedelta(seconds=STABLE_S)) == [key]


def test_late_instance_reopens_a_complete_series(sessions: sessionmaker) -> None:
    key = new_key()
    receive(sessions, key, T0)
    assert complete_at(sessions, T0 + timedelta(seconds=STABLE_S)) == [key]
    receive(sessions, key, T0 + timedelta(seconds=60))
    assert state_of(sessions, key) == SeriesState.RECEIVING
    assert complete_at(sessions, T0 + timedelta(seconds=60 + STABLE_S)) == [key]


def test_poller_retries_a_failed_hook_and_reannounces_after_restart(
    sessions: sessionmaker,
) -> None:
    key = new_key()
    receive(sessions, key, T0)
    calls: list[tuple[str, str]] = []

    def flaky_hook(study_uid: str, series_uid: str) -> None:
        calls.append((study_uid, series_uid))
        if len(calls) == 1:
            raise RuntimeError("queue unavailable")

    poller = CompletionPoller(sessions, STABLE_S, flaky_hook)
    later = T0 + timedelta(seconds=STABLE_S)
    assert poller.poll_once(later) == [key]
    assert state_of(sessions, key) == SeriesState.RECEIVING  # reopened for a retry
    assert poller.poll_once(later + timedelta(seconds=STABLE_S)) == []  # backing off
    assert poller.poll_once(later + timedelta(seconds=2 * STABLE_S)) == [key]
    assert state_of(sessions, key) == SeriesState.COMPLETE
    assert calls == [tuple(key), tuple(key)]

    restarted = CompletionPoller(sessions, STABLE_S, flaky_hook, interval_s=60)
    restarted.start()
    restarted.stop()
    assert calls[-1] == tuple(key) and len(calls) == 3


def test_a_series_whose_hook_keeps_failing_is_marked_stuck_then_retried_on_new_data(
    sessions: sessionmaker,
) -> None:
    """A poisoned study once retried about once a second forever, silently."""
    key = new_key()
    receive(sessions, key, T0)

    def broken_hook(study_uid: str, series_uid: str) -> None:
        raise NotImplementedError("Unknown Value Representation")

    poller = CompletionPoller(sessions, STABLE_S, broken_hook)
    now, announced = T0, 0
    for _ in range(200):  # bounded: 5 attempts with doubling delays
        now += timedelta(seconds=STABLE_S)
        announced += len(poller.poll_once(now))
        if state_of(sessions, key) == SeriesState.STUCK:
            break
    assert state_of(sessions, key) == SeriesState.STUCK
    assert announced == MAX_HOOK_ATTEMPTS
    with sessions() as session:
        assert stuck_series(session) == [key]
    receive(sessions, key, now)  # a late instance of the series gives it another chance
    assert state_of(sessions, key) == SeriesState.RECEIVING
