"""Release: finished outputs in, deliveries out, after a reviewer's approval when required.

In: a finished job's outputs (from the worker's completing transaction). Out: outbox rows,
at once or when a reviewer approves (`[release] require_review`). Owns `release_reviews`.
"""

from dicom_node.release.reviews import ReleaseGate, Review, ReviewError, ReviewState

__all__ = ["ReleaseGate", "Review", "ReviewError", "ReviewState"]
