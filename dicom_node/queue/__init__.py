"""Queue: completed studies in, leased jobs and exactly-once results out.

In: a study whose series have finished arriving (intake assembles it and enqueues one job per
acquisition, keyed by its idempotency key). Out: jobs claimed under a lease with retries and
backoff, and one result row per key. The database decides; workers only execute. Owns the
`jobs`, `results` and `not_processed_series` (series intake could not use, with the reason)
tables; `leasing` holds the claim/heartbeat/retry rules that the outbox
shares.
"""

from dicom_node.queue.intake import enqueue_study
from dicom_node.queue.jobs import Job, JobQueue
from dicom_node.queue.leasing import LOST_WORKER_REASON, WorkState, backoff_delay_s
from dicom_node.queue.not_processed import NotProcessedSeries, not_processed
from dicom_node.queue.results import Result, add_result_once, results_for_study

__all__ = [
    "LOST_WORKER_REASON",
    "Job",
    "JobQueue",
    "NotProcessedSeries",
    "Result",
    "WorkState",
    "add_result_once",
    "backoff_delay_s",
    "enqueue_study",
    "not_processed",
    "results_for_study",
]
