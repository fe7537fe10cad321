"""Settling a held visit's identity, with the amended reports it causes, for the command
line and the web console alike (one path, so both queue the same amendments)."""

from __future__ import annotations

from dataclasses import dataclass

from dicom_node.db import open_node_db
from dicom_node.process.amend import due_amendments
from dicom_node.queue.jobs import JobQueue
from monitor.settings import Settings
from monitor.tracking.review import ReviewItem, resolve_identity
from monitor.tracking.schema import open_history


@dataclass(frozen=True)
class IdentityOutcome:
    item: ReviewItem
    reassessed: int
    """Visits of the patient whose assessment changed."""
    amendments_queued: int


def settle_identity(  # noqa: PLR0913 - the decision and who took it
    settings: Settings,
    study_uid: str,
    decision: str,
    reviewer: str,
    update_patient: bool = False,
) -> IdentityOutcome:
    """Apply the decision (raises `monitor.tracking.review.ReviewError` when it cannot be),
    re-assess the patient and queue amended reports of visits already sent."""
    with open_history(settings) as sessions:
        item, changed = resolve_identity(
            sessions, study_uid.strip(), decision, reviewer, settings, update_patient
        )
    amendments = []
    if changed:
        with open_node_db(settings) as node:
            queue = JobQueue(node, settings.jobs)
            amendments = due_amendments(node, settings, changed)
            for key, study, payload in amendments:
                queue.enqueue(key, study, payload)
    return IdentityOutcome(item, len(changed), len(amendments))
