"""From completed series to jobs: assemble what has arrived of a study and enqueue each
acquisition under its idempotency key (so re-announcements and resends add nothing).

A DICOM SEG sent with the study (an external deep grey matter segmentation, e.g. FastSurfer's
exported to DICOM) joins the job of the acquisition on its frame of reference. While a SEG
series of the study is still arriving the study waits: its completion announces the study
again, and a job enqueued without it could not take it later (the key is already used).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from dicom_node.assemble.seg_input import find_segmentation
from dicom_node.assemble.study import assemble_study
from dicom_node.logs import log_event, uid_hash
from dicom_node.queue.jobs import Job, JobQueue
from dicom_node.queue.not_processed import clear_not_processed, note_not_processed
from dicom_node.receive.catalogue import Instance, Series, SeriesState, mark_assembled
from dicom_node.sop_classes import SEGMENTATION_SOP_CLASSES

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


def segmentation_series(sessions: sessionmaker, study_uid: str) -> dict[str, SeriesState]:
    """State of each series of the study that holds DICOM SEG instances."""
    query = (
        select(Series.series_uid, Series.state)
        .join(Instance, Instance.series_uid == Series.series_uid)
        .where(
            Instance.study_uid == study_uid,
            Instance.sop_class.in_([str(uid) for uid in SEGMENTATION_SOP_CLASSES]),
        )
        .distinct()
    )
    with sessions() as session:
        return {uid: SeriesState(state) for uid, state in session.execute(query)}


def enqueue_study(sessions: sessionmaker, queue: JobQueue, study_uid: str) -> list[Job]:
    """Assemble the study's complete series and enqueue one job per acquisition found.

    Series that are not (yet) part of an acquisition stay ``complete``: a phase series that
    arrives later triggers this again and the pair is assembled then.
    """
    segmentations = segmentation_series(sessions, study_uid)
    if SeriesState.RECEIVING in segmentations.values():
        log_event(LOGGER, "study_waits_for_segmentation", study=uid_hash(study_uid))
        return []
    by_series = complete_study_files(sessions, study_uid)
    seg_series_of = {p: uid for uid in segmentations for p in by_series.pop(uid, [])}
    report = assemble_study([path for paths in by_series.values() for path in paths])
    jobs = []
    for acquisition in report.acquisitions:
        paths = [str(p) for series in acquisition.series_uids for p in by_series.get(series, [])]
        used = list(acquisition.series_uids)
        segmentation = find_segmentation(seg_series_of, acquisition.frame_of_reference_uid)
        if segmentation is not None:
            paths.append(str(segmentation))
            used.append(seg_series_of[segmentation])
        jobs.append(queue.enqueue(acquisition.idempotency_key, study_uid, {"paths": paths}))
        with sessions() as session:
            for series_uid in used:
                mark_assembled(session, series_uid)
            clear_not_processed(session, used)
            session.commit()
    with sessions() as session:
        for rejection in report.rejected:
            note_not_processed(session, study_uid, rejection.series_uids, rejection.reason)
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
