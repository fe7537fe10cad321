"""A real two-node Ray cluster on this machine, started by the test and stopped by it.

The head (`ray start --head`) and a second node (`ray start --address=...`) that registers the
custom resource `OTHER_NODE`, so a task can be pinned to "the other node" and the test can see
where it ran. Both run with ``--block``: each `ray start` stays in the foreground as the parent
of its Ray processes, so the test ends exactly the processes it started, by id.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from dicom_node.process.compute import driver_address
from support.node_helpers import free_port

__all__ = ["OTHER_NODE", "RayCluster", "descendants", "running_ray_cluster"]

ISOLATED_ENV = "QSM_TEST_LOOPBACK_NETNS"
"""Set to 1 inside the network namespace the Ray tests run in (only loopback exists there)."""

OTHER_NODE = "qsm_other_node"
"""Custom resource only the second node has."""


@dataclass
class RayCluster:
    address: str
    head: subprocess.Popen[bytes]
    other: subprocess.Popen[bytes]


def _ray() -> str:
    return str(Path(sys.executable).with_name("ray"))


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [_ray(), "start", "--block", "--disable-usage-stats", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_for_nodes(address: str, count: int, timeout_s: float = 90.0) -> None:
    import ray

    ray.init(
        address=address, namespace="qsm-monitor", log_to_driver=False, **driver_address(address)
    )
    deadline = time.monotonic() + timeout_s
    while sum(n["Alive"] for n in ray.nodes()) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"Ray cluster did not reach {count} nodes")
        time.sleep(0.5)


def descendants(pid: int) -> list[int]:
    """Process ids below `pid` (read from /proc), to find the Ray workers a node started."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the blocking `ray start` (it stops its node), then its group if it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    for pid in descendants(process.pid):
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@contextmanager
def running_ray_cluster() -> Iterator[RayCluster]:
    """Head with one CPU plus a second one-CPU node carrying `OTHER_NODE`; the test process
    is connected as the driver."""
    import ray

    root = Path(tempfile.mkdtemp(prefix="qsm-ray-"))
    port = free_port()
    address = f"127.0.0.1:{port}"
    common = ["--num-cpus", "1", "--num-gpus", "0", "--node-ip-address", "127.0.0.1"]
    head = _start(
        [
            "--head",
            "--port",
            str(port),
            "--temp-dir",
            str(root),
            "--include-dashboard",
            "false",
            *common,
        ],
        root / "head.log",
    )
    other = None
    try:
        other = _start(
            ["--address", address, "--resources", json.dumps({OTHER_NODE: 1}), *common],
            root / "other.log",
        )
        _wait_for_nodes(address, 2)
        yield RayCluster(address, head, other)
    finally:
        ray.shutdown()
        for process in (other, head):
            if process is not None:
                _stop(process)
        shutil.rmtree(root, ignore_errors=True)
