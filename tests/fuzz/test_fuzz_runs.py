"""A short coverage-guided fuzz run of each target in CI (the long run is in docs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

TARGETS = Path(__file__).with_name("targets.py")
SECONDS = 30


@pytest.mark.slow
@pytest.mark.parametrize("target", ["ingest", "assembly"])
def test_fuzz_target_finds_no_crash(tmp_path: Path, target: str) -> None:
    run = subprocess.run(
        [
            sys.executable,
            str(TARGETS),
            target,
            str(tmp_path / "corpus"),
            f"-max_total_time={SECONDS}",
            f"-artifact_prefix={tmp_path}/",
            "-rss_limit_mb=12000",  # the instrumented imports (JAX, SimpleITK) start above 2 GB
        ],
        capture_output=True,
        text=True,
        timeout=SECONDS + 240,
        check=False,
    )
    log = run.stderr[-3000:]
    assert run.returncode == 0, log
    assert "Done " in run.stderr, log  # it really fuzzed (executions counted)
    assert not list(tmp_path.glob("crash-*")), log
