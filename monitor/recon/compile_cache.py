"""Persistent JAX compilation cache, so a restarted service does not recompile the recon.

Compiling the reconstruction for one grid takes seconds per stage; with the cache on disk a new
process (worker restart, `qsm-monitor recon` run) loads the executables instead. The default
cache is per user, not per working directory: executables depend on the grid, not on where the
command runs, so a CLI run from any folder reuses what `qsm-monitor warmup` or an earlier run
compiled.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
from jax.experimental.compilation_cache.compilation_cache import reset_cache

from monitor.settings import Settings

__all__ = ["compilation_cache_dir", "enable_compilation_cache", "user_cache_dir"]


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


def user_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/qsm-monitor/jax`, else `~/.cache/qsm-monitor/jax` (XDG base directories).

    An empty or relative `XDG_CACHE_HOME` is ignored, as the XDG specification asks, so the
    cache never lands in whatever folder the command was started from.
    """
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache"
    return root / "qsm-monitor" / "jax"


def compilation_cache_dir(settings: Settings) -> Path:
    """Configured JAX cache folder (`[recon] compilation_cache_dir`), else the per-user one."""
    return settings.recon.compilation_cache_dir or user_cache_dir()
