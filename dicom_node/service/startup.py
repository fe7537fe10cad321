"""The one human line `serve` prints when it is ready: what an operator checks first.

Hospital IT starting the node wants to see, without reading logs, which AE title and port it
answers on, where results go, where the work runs, and what looks wrong (no destinations: the
results would never leave the data folder; no allow-list: any AE may send).
"""

from __future__ import annotations

from monitor import __version__
from monitor.settings import Settings

__all__ = ["startup_summary"]


def startup_summary(settings: Settings) -> str:
    node, compute = settings.node, settings.compute
    engine = "local" if compute.engine == "local" else f"ray at {compute.address}"
    destinations = ", ".join(f"{d.name} ({d.kind})" for d in settings.destinations) or "none"
    warnings = []
    if not settings.destinations:
        warnings.append("no destinations configured: results stay in the data folder")
    if not node.allowed_calling_ae:
        warnings.append("no allowed_calling_ae: any calling AE title is accepted")
    if node.host not in {"127.0.0.1", "::1", "localhost"} and not node.tls.enabled:
        warnings.append(f"listening on {node.host} without TLS")
    line = (
        f"qsm-monitor {__version__} ready: AE {node.ae_title} on {node.host}:{node.port}; "
        f"{settings.jobs.workers} worker(s), engine {engine}; destinations: {destinations}; "
        f"data: {settings.storage.data_dir}"
    )
    return line + ("; warnings: " + "; ".join(warnings) if warnings else "")
