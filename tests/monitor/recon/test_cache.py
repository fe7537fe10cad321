"""Persistent compilation cache: a second process reuses what the first one compiled."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from monitor.recon.compile_cache import enable_compilation_cache

# Compiles the real TV-ADMM inversion on a tiny grid and reports compile time and cache hits.
_CHILD = """
import json, sys, time
from pathlib import Path
import jax
import numpy as np
from monitor.recon.compile_cache import enable_compilation_cache
from monitor.recon.dipole import invert
from monitor.settings import ReconSettings

enable_compilation_cache(Path(sys.argv[1]))
hits = []
jax.monitoring.register_event_listener(
    lambda event, **_: hits.append(event) if event.endswith("cache_hits") else None
)
field = np.zeros((16, 16, 16), np.float32)
mask = np.zeros((16, 16, 16), bool)
mask[4:12, 4:12, 4:12] = True
start = time.perf_counter()
invert(field, mask, (2.0, 2.0, 2.0), (0.0, 0.0, 1.0), ReconSettings(tv_iterations=3))
print(json.dumps({"seconds": time.perf_counter() - start, "hits": len(hits)}))
"""


def _run_child(cache_dir: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(cache_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_second_process_loads_compiled_recon_from_cache(tmp_path: Path) -> None:
    cache_dir = tmp_path / "jax-cache"
    first = _run_child(cache_dir)
    entries = [p for p in cache_dir.rglob("*") if p.is_file()]
    second = _run_child(cache_dir)

    assert first["hits"] == 0
    assert entries, "the first run wrote nothing to the cache"
    assert second["hits"] >= 1
    assert second["seconds"] < first["seconds"]


def test_enable_is_idempotent_and_creates_directory(tmp_path: Path) -> None:
    previous = jax.config.jax_compilation_cache_dir
    try:
        target = tmp_path / "nested" / "cache"
        first = enable_compilation_cache(target)
        second = enable_compilation_cache(target)
        assert first == second == target.resolve()
        assert target.is_dir()
        assert jax.config.jax_compilation_cache_dir == str(target.resolve())
        assert jax.config.jax_persistent_cache_min_compile_time_secs == 0.0
    finally:
        jax.config.update("jax_compilation_cache_dir", previous)
