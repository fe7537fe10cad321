"""The Ray engine tests, run inside their own network namespace that has only loopback.

Ray's processes talk to each other on the machine's interface address even when started with
`--node-ip-address 127.0.0.1`; inside a fresh namespace (`unshare -n`, loopback up) no other
address exists, so the cluster, PostgreSQL and the tests stay on 127.0.0.1 by construction.
The cases themselves are `test_ray_engine.py`; this runs them there and fails if any fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.ray_cluster import ISOLATED_ENV

CASES = Path(__file__).with_name("test_ray_engine.py")


@pytest.mark.slow
def test_ray_engine_cases_pass_in_a_loopback_only_network_namespace() -> None:
    unshare = shutil.which("unshare")
    assert unshare is not None, "util-linux unshare is needed (Debian: util-linux)"
    # One process inside the namespace ("-n 0"): the suite's own two are outside it.
    pytest_cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-n",
        "0",
        "-p",
        "no:cacheprovider",
        str(CASES),
    ]
    script = "ip link set lo up && exec " + " ".join(pytest_cmd)
    run = subprocess.run(
        [unshare, "--net", "sh", "-c", script],
        env={**os.environ, ISOLATED_ENV: "1"},
        cwd=Path(__file__).resolve().parents[3],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    tail = (run.stdout + run.stderr)[-4000:]
    assert run.returncode == 0, tail
    assert " passed" in run.stdout and " skipped" not in run.stdout, tail
