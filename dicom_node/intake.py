"""From completed series to jobs: assemble what has arrived of a study and enqueue each
acquisition under its idempotency key (so re-announcements and resends add nothing)."""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from dicom_node.assemble import assemble_study
from dicom_node.catalogue import Instance, Series, SeriesState, mark_assembled
from dicom_node.jobs import Job, JobQueue
from dicom_node.logging_utils import log_event, uid_hash

LOGGER = logging.getLogger(__name__)


def complete_study_files(sessions: sessionmaker, study_uid: str) -> dict[str, list[Path]]:
    """Spooled files of the study's series that finished arriving, by series UID."""
    query = (
        select(Instance.series_uid, Instance.path)
        .join(Series, Series.series_uid == Instance.series_uid)
        .where(Instance.study_uid == study_uid, Series.state != SeriesState.RECEIVING)
        .order_by(Instance.series_uid, Instance.instance_number, Instance.id)
    )
    by_series: dict[str, list[Path]] = defaultdict(list)
    with sessions() as session:
        for series_uid, path in session.execute(query):
            by_series[series_uid].append(Path(path))
    return dict(by_series)


def enqueue_study(sessions: sessionmaker, queue: JobQueue, study_uid: str) -> list[Job]:
    """Assemble the study's complete series and enqueue one job per acquisition found.

    Series that are not (yet) part of an acquisition stay ``complete``: a phase series that
    arrives later triggers this again and the pair is assembled then.
    """
    by_series = complete_study_files(sessions, study_uid)
    report = assemble_study([path for paths in by_series.values() for path in paths])
    jobs = []
    for acquisition in report.acquisitions:
        paths = [str(p) for series in acquisition.series_uids for p in by_series.get(series, [])]
        jobs.append(queue.enqueue(acquisition.idempotency_key, study_uid, {"paths": paths}))
        with sessions() as session:
            for series_uid in acquisition.series_uids:
                mark_assembled(session, series_uid)
            session.commit()
    for rejection in report.rejected:
        log_event(
            LOGGER,
            "series_not_processed",
            series=[uid_hash(uid) for uid in rejection.series_uids],
            reason=rejection.reason,
        )
    log_event(LOGGER, "study_enqueued", study=uid_hash(study_uid), jobs=[j.id for j in jobs])
    return jobs
