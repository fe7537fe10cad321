"""Compute engines: where the heavy stage (`dicom_node.process.analysis.analyse`) runs.

``local`` runs it in the worker process (the embedded path, unchanged). ``ray`` submits it as
a Ray task: the inputs go through Ray's object store, so a worker machine needs only
``pip install qsm-monitor[ray]`` and no access to the spool or the database. Ray only
executes: the job's lease, retries, result row and deliveries stay with the node and the
database. A task is therefore submitted with ``max_retries=0``: when its Ray worker dies the
error reaches the job, which is retried under the queue's rules (attempts, backoff), and the
result is stored once because completion is conditional on the lease.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

from dicom_node.process.analysis import Analysis, AnalysisInput, Progress, analyse
from monitor.settings import ComputeSettings, Settings

__all__ = ["ComputeEngine", "LocalEngine", "RayEngine", "compute_engine"]

WAIT_SLICE_S = 1.0
"""How often a node waiting on a Ray task looks up (a stop signal is handled between waits)."""


class ComputeEngine(Protocol):
    """Runs the heavy stage of one acquisition and says what it runs on."""

    name: str

    def analyse(self, inputs: AnalysisInput, progress: Progress | None = None) -> Analysis: ...

    def describe(self) -> dict[str, Any]: ...


class LocalEngine:
    """In this process; with settings, JAX's persistent compilation cache is switched on."""

    name = "local"

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings

    def analyse(self, inputs: AnalysisInput, progress: Progress | None = None) -> Analysis:
        if self.settings is not None:
            from monitor.recon.compile_cache import (  # imports JAX
                compilation_cache_dir,
                enable_compilation_cache,
            )

            enable_compilation_cache(compilation_cache_dir(self.settings))
        return analyse(inputs, progress)

    def describe(self) -> dict[str, Any]:
        return {"engine": self.name, "cpus": os.cpu_count()}


def _analyse_on_ray_worker(inputs: AnalysisInput) -> Analysis:
    """The Ray task body: `analyse`, tagged with the Ray node it ran on."""
    from dataclasses import replace

    import ray

    analysis = analyse(inputs)
    return replace(analysis, ran_on=ray.get_runtime_context().get_node_id())


class RayEngine:
    """On a Ray cluster; connects on first use (``ray.init(address)``), once per process."""

    name = "ray"

    def __init__(self, settings: ComputeSettings) -> None:
        self.settings = settings

    def connect(self) -> Any:
        """The `ray` module, connected to the configured cluster."""
        import ray

        if not ray.is_initialized():
            ray.init(
                address=self.settings.address,
                namespace="qsm-monitor",
                log_to_driver=False,
                **driver_address(self.settings.address),
            )
        return ray

    def submit(self, inputs: AnalysisInput) -> Any:
        """Submit one task; returns its ObjectRef (the arrays are put in the object store)."""
        ray = self.connect()
        task = ray.remote(_analyse_on_ray_worker).options(
            num_cpus=self.settings.num_cpus,
            num_gpus=self.settings.num_gpus,
            resources=dict(self.settings.resources) or None,
            max_retries=0,
            name="qsm_analyse",
        )
        return task.remote(ray.put(inputs))

    def analyse(self, inputs: AnalysisInput, progress: Progress | None = None) -> Analysis:
        if progress is not None:
            progress("submitted to ray")
        return self.wait(self.submit(inputs))

    def wait(self, ref: Any) -> Analysis:
        """The task's result, waited for in short slices so that a stop signal raised in this
        thread lands between them; the task is then cancelled, so a released job does not
        also keep running on the cluster."""
        ray = self.connect()
        try:
            while not ray.wait([ref], timeout=WAIT_SLICE_S)[0]:
                pass
        except BaseException:
            ray.cancel(ref, force=True)
            raise
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as error:
            # The task's own exception, as a local run raises it: an invalid acquisition still
            # fails the job at once, and the job's reason stays one plain line.
            cause = error.cause
            raise (cause if isinstance(cause, Exception) else error) from None

    def describe(self) -> dict[str, Any]:
        """Alive nodes, CPUs and GPUs in total and free; tasks in flight are what is used."""
        ray = self.connect()
        total, free = ray.cluster_resources(), ray.available_resources()
        nodes = [node for node in ray.nodes() if node.get("Alive")]
        return {
            "engine": self.name,
            "address": self.settings.address,
            "nodes": len(nodes),
            "cpus": total.get("CPU", 0.0),
            "gpus": total.get("GPU", 0.0),
            "cpus_in_use": total.get("CPU", 0.0) - free.get("CPU", 0.0),
            "gpus_in_use": total.get("GPU", 0.0) - free.get("GPU", 0.0),
        }


def compute_engine(settings: Settings) -> ComputeEngine:
    """The configured engine (`[compute] engine`); Ray is imported only when it is used."""
    if settings.compute.engine == "ray":
        return RayEngine(settings.compute)
    return LocalEngine(settings)


def driver_address(cluster_address: str) -> dict[str, str]:
    """Pin this process's Ray address to loopback when the cluster is on loopback.

    Ray otherwise announces the driver on the interface its route to the internet would use,
    so a single-machine cluster started on 127.0.0.1 (tests, one-box sites) would be reached
    through a non-loopback address.
    """
    host = cluster_address.removeprefix("ray://").rsplit(":", 1)[0]
    return {"_node_ip_address": "127.0.0.1"} if host in {"127.0.0.1", "localhost"} else {}
