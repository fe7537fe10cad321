"""The one base class of the DICOM node's errors (a kind of `monitor.errors.MonitorError`).

Subclasses keep their builtin parents; `dicom_node.cli` maps them to exit codes with the
domain's rule (`monitor.cli.exit_code_for`), so there is one mapping for the whole command.
"""

from __future__ import annotations

from monitor.errors import MonitorError

__all__ = ["NodeError"]


class NodeError(MonitorError):
    """Base of every error the node raises on purpose."""
