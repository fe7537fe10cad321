"""Priors: a patient's earlier exams fetched from the PACS (Study Root C-FIND, C-MOVE/C-GET).

In: a processed visit with no comparable prior (the worker queues a fetch in the transaction
that stores its result), or `qsm-monitor priors fetch`. Out: the earlier multi-echo GRE
series, retrieved to this node, where the catalogue, completion and intake take them as
back-filled visits (and the amendment path re-issues the current report). Studies the
history or catalogue already holds are never retrieved. Owns the `prior_fetches` table
(leased, retried with backoff by the service's fetch thread).
"""

from dicom_node.priors.errors import PriorsError
from dicom_node.priors.fetch import (
    FetchPlan,
    default_since,
    known_study_uids,
    patient_ref,
    plan_fetch,
    prior_source,
    run_fetch,
)
from dicom_node.priors.query import PriorQuery, PriorSeries, find_prior_series
from dicom_node.priors.requests import PriorFetch, PriorFetches, queue_fetch
from dicom_node.priors.retrieve import RetrieveOutcome, retrieve_series
from dicom_node.priors.runner import PriorFetcher
from dicom_node.priors.store import SpoolingStore
from dicom_node.priors.trigger import request_priors

__all__ = [
    "FetchPlan",
    "PriorFetch",
    "PriorFetcher",
    "PriorFetches",
    "PriorQuery",
    "PriorSeries",
    "PriorsError",
    "RetrieveOutcome",
    "SpoolingStore",
    "default_since",
    "find_prior_series",
    "known_study_uids",
    "patient_ref",
    "plan_fetch",
    "prior_source",
    "queue_fetch",
    "request_priors",
    "retrieve_series",
    "run_fetch",
]
