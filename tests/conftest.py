"""Shared test configuration."""

from __future__ import annotations

import pytest

from monitor.phantom import Phantom, PhantomConfig, simulate_phantom


@pytest.fixture(scope="session")
def realistic_phantom() -> Phantom:
    """The default oblique 1x1x2 mm head phantom (seed 0), simulated once per session: the
    reconstruction accuracy and the end-to-end measurement tests judge the same subject."""
    return simulate_phantom(PhantomConfig(), rng=0)
