"""Deciding when a series has finished arriving, and telling the service.

DICOM has no "end of series" message, so a series is complete when nothing new arrived for
`stable_after_s`, or earlier when every instance announced the same total and it is reached
(see `catalogue.Series.expected_count` for when that total is trusted).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import and_, distinct, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from dicom_node.db import utcnow
from dicom_node.logs import log_event, uid_hash
from dicom_node.receive.catalogue import Instance, Series, SeriesState

LOGGER = logging.getLogger(__name__)

SeriesCallback = Callable[[str, str], None]
"""Called as ``on_series_complete(study_uid, series_uid)``; must be idempotent."""


class SeriesKey(NamedTuple):
    study_uid: str
    series_uid: str


def find_complete_series(session: Session, now: datetime, stable_after_s: float) -> list[SeriesKey]:
    """Mark receiving series that are stable or fully counted as complete (caller commits).

    A count only completes a series when its instance numbers are all different, i.e. they
    are exactly 1..total; repeated numbers mean the total described part of the series.
    """
    cutoff = now - timedelta(seconds=stable_after_s)
    counted = and_(
        Series.expected_count.is_not(None), Series.instance_count >= Series.expected_count
    )
    query = select(Series).where(
        Series.state == SeriesState.RECEIVING,
        or_(Series.last_received_at <= cutoff, counted),
    )
    done = [
        series
        for series in session.scalars(query)
        if series.last_received_at <= cutoff or _numbers_distinct(session, series)
    ]
    for series in done:
        series.state = SeriesState.COMPLETE
    session.flush()
    return [SeriesKey(s.study_uid, s.series_uid) for s in done]


def _numbers_distinct(session: Session, series: Series) -> bool:
    numbers = select(func.count(distinct(Instance.instance_number))).where(
        Instance.series_uid == series.series_uid
    )
    return session.scalar(numbers) == series.instance_count


def complete_series(session: Session) -> list[SeriesKey]:
    """Series marked complete but not yet assembled (re-announced after a restart)."""
    query = select(Series.study_uid, Series.series_uid).where(Series.state == SeriesState.COMPLETE)
    return [SeriesKey(*row) for row in session.execute(query)]


def reopen_series(session: Session, series_uid: str, quiet_until: datetime | None = None) -> None:
    """Put a series back to receiving so a later poll announces it again (caller commits).

    `quiet_until` postpones that announcement by moving the series' stability clock forward
    (its last arrival is treated as then): the backoff of a failing hook, with no column of
    its own.
    """
    series = session.get(Series, series_uid)
    if series is not None and series.state == SeriesState.COMPLETE:
        series.state = SeriesState.RECEIVING
        if quiet_until is not None:
            series.last_received_at = max(series.last_received_at, quiet_until)


def mark_stuck(session: Session, series_uid: str) -> None:
    """Give up announcing a series (caller commits); `stuck_series` lists it for `status`."""
    series = session.get(Series, series_uid)
    if series is not None:
        series.state = SeriesState.STUCK


def stuck_series(session: Session) -> list[SeriesKey]:
    query = select(Series.study_uid, Series.series_uid).where(Series.state == SeriesState.STUCK)
    return [SeriesKey(*row) for row in session.execute(query)]


MAX_HOOK_ATTEMPTS = 5
"""Failed hand-overs of one series before it is marked stuck (backoff doubles each time)."""


class CompletionPoller:
    """Background thread that finds complete series and calls the service's hook for each.

    Marking is committed before the hook runs (the hook usually writes to the same database,
    which SQLite would otherwise lock); a failing hook reopens the series so it is retried.
    """

    def __init__(
        self,
        sessions: sessionmaker,
        stable_after_s: float,
        on_series_complete: SeriesCallback | None,
        interval_s: float | None = None,
    ) -> None:
        self.sessions = sessions
        self.stable_after_s = stable_after_s
        self.on_series_complete = on_series_complete
        self.interval_s = interval_s if interval_s is not None else min(1.0, stable_after_s / 4)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures: Counter[str] = Counter()
        """Failed hook calls per series in this process (a restart starts afresh)."""

    def start(self) -> None:
        """Re-announce series completed before a restart, then poll until `stop()`."""
        with self.sessions() as session:
            pending = complete_series(session)
        self._announce(pending, utcnow())
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="completion-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def poll_once(self, now: datetime | None = None) -> list[SeriesKey]:
        """One pass: mark, commit, announce. Returns the series that became complete."""
        now = now or utcnow()
        with self.sessions() as session:
            done = find_complete_series(session, now, self.stable_after_s)
            session.commit()
        self._announce(done, now)
        return done

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.poll_once()
            except Exception:  # a database hiccup must not end completion for good
                LOGGER.exception("completion_poll_failed")

    def _announce(self, keys: list[SeriesKey], now: datetime) -> None:
        for key in keys:
            log_event(LOGGER, "series_complete", series=uid_hash(key.series_uid))
            if self.on_series_complete is None:
                continue
            try:
                self.on_series_complete(key.study_uid, key.series_uid)
            except Exception:
                self._hook_failed(key, now)
            else:
                self._failures.pop(key.series_uid, None)

    def _hook_failed(self, key: SeriesKey, now: datetime) -> None:
        """Retry with a doubling delay, then give up and mark the series stuck: a series that
        cannot be handed over must neither block forever silently nor fill the log."""
        self._failures[key.series_uid] += 1
        attempts = self._failures[key.series_uid]
        stuck = attempts >= MAX_HOOK_ATTEMPTS
        log_event(
            LOGGER,
            "series_stuck" if stuck else "series_hook_failed",
            logging.ERROR,
            exc_info=True,
            series=uid_hash(key.series_uid),
            attempts=attempts,
        )
        with self.sessions() as session:
            if stuck:
                mark_stuck(session, key.series_uid)
                self._failures.pop(key.series_uid, None)
            else:
                backoff = timedelta(seconds=self.stable_after_s * (2**attempts - 1))
                reopen_series(session, key.series_uid, now + backoff)
            session.commit()
