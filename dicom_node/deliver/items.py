"""What the deliverers share: one output on its way, and the one error they raise.

A module of its own so the DICOM and HTTP senders and the outbox depend on it, not on each
other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dicom_node.errors import NodeError

__all__ = ["DeliveryError", "DeliveryItem"]


class DeliveryError(NodeError, RuntimeError):
    """A delivery attempt failed; the message is one plain reason fit for `last_error`.

    `permanent` means sending the same thing again cannot succeed (the receiver rejected the
    content or our credentials): the outbox dead-letters it at once instead of retrying.
    """

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class DeliveryItem:
    """One record output on its way: a file, or a folder delivered as one unit (a series)."""

    output: str
    path: Path
    study_uid: str

    def files(self) -> list[Path]:
        """The file itself, or the folder's visible files in name order."""
        if not self.path.exists():  # removed from the data directory: a retry cannot help
            message = f"output {self.output!r} is missing ({self.path.name})"
            raise DeliveryError(message, permanent=True)
        if self.path.is_dir():
            found = (p for p in self.path.rglob("*") if p.is_file())
            return sorted(p for p in found if not p.name.startswith("."))
        return [self.path]
