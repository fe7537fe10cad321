"""Where the emit step (SR, maps, key images, trend plot, report page, FHIR) runs.

Emission is pure Python: it holds the interpreter lock for most of its time. When Ray does the
heavy stage, a backfill keeps several jobs in flight from threads of one node process, and
their emit steps took turns on one core: on small studies emission is ~70 % of a job (measured:
3.5 of 4.8 s per study, against 0.3 s of reconstruction and measurement), so a second Ray
worker bought nothing. `EmitterPool` runs emission in node processes of its own; the files
still land in the node's data directory, and the lane that made the result stores it as
before, so the job, its lease and its deliveries do not change hands.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from monitor.settings import Settings

if TYPE_CHECKING:
    from dicom_node.outputs.emit import EmitInput, Emitted

__all__ = ["Emitter", "EmitterPool", "InProcessEmitter"]


class Emitter(Protocol):
    """Writes one record's outputs into `out_dir` and says what it made or skipped."""

    def emit(self, inputs: EmitInput, out_dir: Path, settings: Settings) -> Emitted: ...


class InProcessEmitter:
    """In the calling thread: the service worker and the command line (one job at a time)."""

    def emit(self, inputs: EmitInput, out_dir: Path, settings: Settings) -> Emitted:
        from dicom_node.outputs.emit import emit_outputs

        return emit_outputs(inputs, out_dir, settings)


EMITTER_NICENESS = 5
"""Pool processes run at a lower priority than the node: the node's own work (reading the
archive's headers, assembling each job, storing results) is the part only one core can do,
so it goes first when both cores are busy."""


def _start_process() -> None:
    """Pool initializer: lower the priority, and import the output builders (matplotlib,
    highdicom, fhir.resources behind them) once per process, not during its first job."""
    os.nice(EMITTER_NICENESS)
    _load_outputs()


def _load_outputs() -> None:
    """Import the output builders; also submitted once per process to start them all now."""
    import dicom_node.outputs.emit  # noqa: F401 - imported for its import time
    import dicom_node.outputs.qsm_map  # noqa: F401
    import dicom_node.outputs.report_page  # noqa: F401
    import dicom_node.outputs.sr  # noqa: F401
    import monitor.fhir.bundle  # noqa: F401
    import monitor.segment.keyimage  # noqa: F401
    import monitor.tracking.timeline  # noqa: F401


class EmitterPool:
    """`processes` spawned node processes (not forked: the parent runs JAX and Ray threads,
    which a fork would copy mid-flight). All are started at once, so their imports overlap
    with whatever the node does next. A process that dies fails only the job in hand (retried
    under the queue's rules); the pool is replaced for the next one."""

    def __init__(self, processes: int) -> None:
        if processes < 1:
            raise ValueError("an emitter pool needs at least one process")
        self._processes = processes
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(
            self._processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_process,
        )
        for _ in range(self._processes):
            pool.submit(_load_outputs)
        return pool

    def emit(self, inputs: EmitInput, out_dir: Path, settings: Settings) -> Emitted:
        from dicom_node.outputs.emit import emit_outputs

        try:
            return self._pool.submit(emit_outputs, inputs, out_dir, settings).result()
        except BrokenProcessPool:
            self._pool.shutdown(cancel_futures=True)
            self._pool = self._start()
            raise

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)

    def __enter__(self) -> EmitterPool:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
