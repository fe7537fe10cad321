"""The prior fetch's one error class: every failure is one plain reason fit for `last_error`."""

from __future__ import annotations

from dicom_node.errors import NodeError


class PriorsError(NodeError, RuntimeError):
    """A query or retrieve failed (PACS unreachable, association rejected, C-MOVE destination
    unknown, sub-operations failed). Retried with backoff unless `permanent` (nothing a
    retry can fix, e.g. no source configured)."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
