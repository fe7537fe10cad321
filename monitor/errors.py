"""The one base class of every error qsm-monitor raises on purpose.

Each error also keeps its builtin parent (`ValueError` for wrong input, `LookupError`,
`RuntimeError`), so ordinary Python handling still works, while the command line can catch
this one base and turn any of them into one plain line and an exit code
(`monitor.cli.exit_code_for`): 2 when the user's input is wrong, 1 otherwise. The message of
every subclass is written for the user: one line, no patient data.
"""

from __future__ import annotations

__all__ = ["MonitorError"]


class MonitorError(Exception):
    """Base of the domain's errors and, through `dicom_node.errors.NodeError`, the node's."""
