"""Persistent JAX compilation cache, so a restarted service does not recompile the recon.

Compiling the reconstruction for one grid takes seconds per stage; with the cache on disk a new
process (worker restart, `qsm-monitor process` run) loads the executables instead.
"""

from __future__ import annotations

from pathlib import Path

import jax
from jax.experimental.compilation_cache.compilation_cache import reset_cache

from monitor.settings import Settings

__all__ = ["compilation_cache_dir", "enable_compilation_cache"]


def enable_compilation_cache(directory: Path) -> Path:
    """Store every compiled executable under `directory` (created); returns the resolved path.

    Idempotent. Thresholds are zeroed because JAX by default skips programs that compile in
    under a second, and the small per-stage programs are exactly the ones we recompile on
    every start. Switching to another directory resets JAX's cache handle, which otherwise
    stays bound to the first directory it opened.
    """
    path = Path(directory).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    if jax.config.jax_compilation_cache_dir != str(path):
        jax.config.update("jax_compilation_cache_dir", str(path))
        reset_cache()
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    return path


def compilation_cache_dir(settings: Settings) -> Path:
    """Configured JAX cache folder, else one inside the data directory (shared by all runs)."""
    return settings.recon.compilation_cache_dir or settings.storage.data_dir / "jax-cache"
