"""`/metrics` in Prometheus text format, read from the database at scrape time.

The node's state lives in the database (several processes, possibly several nodes), so a
collector queries it on each scrape instead of counting in one process's memory. Processing
seconds are the time from a job's queueing to its completion, as a histogram over the
finished jobs.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from dicom_node.deliver.outbox import Delivery
from dicom_node.queue.jobs import Job
from dicom_node.queue.leasing import WorkState
from dicom_node.receive.catalogue import Instance
from dicom_node.release.reviews import Review

PROCESSING_BUCKETS_S = (30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
RECENT_JOBS = 10000


class NodeCollector(Collector):
    def __init__(self, sessions: sessionmaker) -> None:
        self.sessions = sessions

    def collect(self) -> Iterator[Metric]:
        with self.sessions() as session:
            instances = session.scalar(select(func.count()).select_from(Instance)) or 0
            jobs = dict(session.execute(select(Job.state, func.count()).group_by(Job.state)).all())
            done = session.execute(
                select(Job.created_at, Job.updated_at)
                .where(Job.state == WorkState.DONE)
                .order_by(Job.id.desc())
                .limit(RECENT_JOBS)
            ).all()
            deliveries = session.execute(
                select(Delivery.destination, Delivery.state, func.count()).group_by(
                    Delivery.destination, Delivery.state
                )
            ).all()
            reviews = dict(
                session.execute(select(Review.state, func.count()).group_by(Review.state)).all()
            )
        yield CounterMetricFamily(
            "qsm_instances_received", "DICOM instances stored by the listener", value=instances
        )
        by_state = GaugeMetricFamily("qsm_jobs", "Processing jobs by state", labels=["state"])
        for state in WorkState:
            by_state.add_metric([state.value], jobs.get(state.value, 0))
        yield by_state
        yield _histogram([(end - start).total_seconds() for start, end in done])
        delivered = GaugeMetricFamily(
            "qsm_deliveries", "Deliveries by destination and state", labels=["destination", "state"]
        )
        dead = GaugeMetricFamily(
            "qsm_dead_letters", "Deliveries that used up their attempts", labels=["destination"]
        )
        for destination, state, count in deliveries:
            delivered.add_metric([destination, state], count)
            if state == WorkState.FAILED:
                dead.add_metric([destination], count)
        yield delivered
        yield dead
        held = GaugeMetricFamily("qsm_reviews", "Release reviews by state", labels=["state"])
        for state, count in reviews.items():
            held.add_metric([state], count)
        yield held


def _histogram(seconds: list[float]) -> HistogramMetricFamily:
    buckets = [
        (str(bound), sum(1 for s in seconds if s <= bound)) for bound in PROCESSING_BUCKETS_S
    ]
    buckets.append(("+Inf", len(seconds)))
    return HistogramMetricFamily(
        "qsm_processing_seconds",
        "Seconds from a job's queueing to its completion (finished jobs)",
        buckets=buckets,
        sum_value=sum(seconds),
    )


def node_registry(sessions: sessionmaker) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(sessions))
    return registry
