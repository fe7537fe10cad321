"""Where a job's node-side Python work runs: assembling its files and emitting its outputs.

Both are pure Python and hold the interpreter lock for most of their time. When Ray does the
heavy stage, a backfill keeps several jobs in flight from threads of one node process, and
this work took turns on one core: on small studies it is ~90 % of a job (measured, profiled:
assembly 1.0 s and emission 3.5 s of 4.8 s per study, against 0.3 s of reconstruction and
measurement on Ray), so a second Ray worker bought nothing. `NodeWorkPool` runs both in node
processes of its own; the files are still read from and written to the node's disk, and the
lane that runs the job keeps its lease, submits the Ray task and stores the result, so the
job and its deliveries do not change hands.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from monitor.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Callable

    from dicom_node.assemble.study import AssemblyReport
    from dicom_node.outputs.emit import EmitInput, Emitted

__all__ = ["InlineNodeWork", "NodeWork", "NodeWorkPool"]

T = TypeVar("T")

POOL_NICENESS = 5
"""Pool processes run at a lower priority than the node: the node's own work (reading the
archive's headers, submitting tasks, storing results) is the part only one core can do, so it
goes first when both cores are busy."""


class NodeWork(Protocol):
    """Assembles a job's files and writes one record's outputs into `out_dir`."""

    def assemble(self, paths: Sequence[Path]) -> AssemblyReport: ...

    def emit(self, inputs: EmitInput, out_dir: Path, settings: Settings) -> Emitted: ...


def _assemble(paths: Sequence[Path]) -> AssemblyReport:
    from dicom_node.assemble.study import assemble_study

    return assemble_study(paths)


def _emit(inputs: EmitInput, out_dir: Path, settings: Settings) -> Emitted:
    from dicom_node.outputs.emit import emit_outputs

    return emit_outputs(inputs, out_dir, settings)


class InlineNodeWork:
    """In the calling thread: the service worker and the command line (one job at a time)."""

    def assemble(self, paths: Sequence[Path]) -> AssemblyReport:
        return _assemble(paths)

    def emit(self, inputs: EmitInput, out_dir: Path, settings: Settings) -> Emitted:
        return _emit(inputs, out_dir, settings)


def _start_process() -> None:
    """Pool initializer: lower the priority, then import what the jobs need."""
    os.nice(POOL_NICENESS)
    _load_modules()


def _load_modules() -> None:
    """Import assembly and the output builders (matplotlib, highdicom, fhir.resources behind
    them) now rather than during a first job; also submitted once per process at start."""
    import dicom_node.assemble.study  # noqa: F401 - imported for its import time
    import dicom_node.outputs.emit  # noqa: F401
    import dicom_node.outputs.qsm_map  # noqa: F401
    import dicom_node.outputs.report_page  # noqa: F401
    import dicom_node.outputs.sr  # noqa: F401
    import monitor.fhir.bundle  # noqa: F401
    import monitor.segment.keyimage  # noqa: F401
    import monitor.tracking.timeline  # noqa: F401


class NodeWorkPool:
    """`processes` spawned node processes (not forked: the parent runs JAX and Ray threads,
    which a fork would copy mid-flight). All are started at once, so their imports overlap
    with whatever the node does next. A process that dies fails only the job in hand (retried
    under the queue's rules); the pool is replaced for the next one."""

    def __init__(self, processes: int) -> None:
        if processes < 1:
            raise ValueError("a node work pool needs at least one process")
        self._processes = processes
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(
            self._processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_process,
        )
        for _ in range(self._processes):
            pool.submit(_load_modules)
        return pool

    def _run(self, function: Callable[..., T], *args: Any) -> T:
        try:
            return self._pool.submit(function, *args).result()
        except BrokenProcessPool:
            self._pool.shutdown(cancel_futures=True)
            self._pool = self._start()
            raise

    def assemble(self, paths: Sequence[Path]) -> AssemblyReport:
        return self._run(_assemble, list(paths))

    def emit(self, inputs: EmitInput, out_dir: Path, settings: Settings) -> Emitted:
        return self._run(_emit, inputs, out_dir, settings)

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)

    def __enter__(self) -> NodeWorkPool:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
