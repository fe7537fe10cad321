"""Ingest speed and memory of the DICOM listener, against DCMTK's storescp in the same run.

Run: ``.venv/bin/python benchmarks/ingest.py [--rate-files 2000] [--memory-files 10000]``.

DCMTK's ``/usr/bin/storescu`` sends small synthetic MR files (64x64, 16 bit) over loopback in
one association to:

- ``/usr/bin/storescp`` writing into a folder (no fsync: the reference speed of a C++ stack);
- our `Listener` with its data directory on the same disk (fsync'd file + directory + SQLite
  commit per instance, as the node runs for real);
- the same with the files split over 4 concurrent associations (several modalities sending:
  their flushes overlap);
- our `Listener` with its data directory on tmpfs (/dev/shm), where flushes cost nothing, to
  separate the cost of durability from the cost of the pynetdicom stack;
- a bare pynetdicom storage SCP that decodes nothing and answers success: the ceiling of the
  library itself on this machine.

Two rows without any network bound what a durable receiver can reach in one association
(the sender waits for each answer, so nothing can be batched without acknowledging data
that is not yet on disk):

- one ``fsync`` per instance (instance-sized new files): no durable receiver needs less;
- our `Spool` alone (durable file + directory + catalogue commit), the listener's own floor.

storescp runs first and last; its mean is the reference and both runs are printed, with the
load average, because the development machine is shared and rates drift within a run.

Then `--memory-files` instances go to one listener while this process samples its resident
memory (VmRSS) every 1,000 instances: the curve must stay flat (no per-instance growth).
All DCMTK tools run with TCP_NODELAY=1 (see tests/support/node_helpers.py).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pydicom
from pynetdicom import AE, AllStoragePresentationContexts, evt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the packages before tests/,
sys.path.append(str(Path(__file__).resolve().parents[1] / "tests"))  # whose folders share names
from support.node_helpers import DCMTK_ENV, STORESCP, free_port, storescu, write_series  # noqa: E402

from dicom_node.db import create_schema, database_url, make_engine  # noqa: E402
from dicom_node.receive.catalogue import InstanceHeader  # noqa: E402
from dicom_node.receive.listener import TRANSFER_SYNTAXES, Listener  # noqa: E402
from dicom_node.receive.spool import Spool  # noqa: E402
from monitor.settings import load_settings  # noqa: E402


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("VmRSS not found in /proc/self/status")


def send(port: int, files: list[Path], associations: int = 1) -> float:
    """Instances per second, files split over concurrent storescu associations; raises if any
    store failed."""
    chunks = [files[i::associations] for i in range(associations)]
    start = time.perf_counter()
    with ThreadPoolExecutor(associations) as pool:
        results = list(pool.map(lambda chunk: storescu(port, chunk, timeout=3600), chunks))
    elapsed = time.perf_counter() - start
    successes = sum(r.stderr.count("Received Store Response (Success)") for r in results)
    if any(r.returncode for r in results) or successes != len(files):
        tail = results[-1].stderr[-500:]
        raise RuntimeError(f"storescu failed ({successes}/{len(files)}): {tail}")
    return len(files) / elapsed


def storescp_rate(files: list[Path], out_dir: Path) -> float:
    out_dir.mkdir()
    port = free_port()
    server = subprocess.Popen([STORESCP, "-od", str(out_dir), str(port)], env=DCMTK_ENV)
    try:
        time.sleep(0.5)  # let it bind
        return send(port, files)
    finally:
        server.terminate()
        server.wait()


def bare_pynetdicom_rate(files: list[Path]) -> float:
    ae = AE("QSMMON")
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, TRANSFER_SYNTAXES)
    port = free_port()
    handlers = [(evt.EVT_C_STORE, lambda event: 0x0000)]
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=handlers)
    try:
        return send(port, files)
    finally:
        server.shutdown()


def one_fsync_rate(files: list[Path], out_dir: Path) -> float:
    """Instances per second when each is only written to a new file and fsync'd."""
    out_dir.mkdir()
    payloads = [f.read_bytes() for f in files]
    start = time.perf_counter()
    for index, payload in enumerate(payloads):
        fd = os.open(out_dir / f"{index}.dcm", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, payload)
            os.fsync(fd)
        finally:
            os.close(fd)
    return len(files) / (time.perf_counter() - start)


def spool_rate(files: list[Path], data_dir: Path) -> float:
    """Instances per second through `Spool.store` alone (headers read beforehand)."""
    engine = make_engine(database_url(data_dir))
    data_dir.mkdir(exist_ok=True)
    try:
        spool = Spool(data_dir / "spool", create_schema(engine))
        items = []
        for path in files:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            sop = str(ds.SOPInstanceUID)
            header = InstanceHeader.from_dataset(ds, sop, str(ds.SOPClassUID))
            items.append((header, path.read_bytes()))
        start = time.perf_counter()
        for header, encoded in items:
            spool.store(header, encoded)
        return len(files) / (time.perf_counter() - start)
    finally:
        engine.dispose()


def start_listener(data_dir: Path) -> Listener:
    settings = load_settings(
        node={"port": free_port(), "stable_after_s": 3600.0}, storage={"data_dir": data_dir}
    )
    listener = Listener(settings)
    listener.start()
    return listener


def listener_rate(files: list[Path], data_dir: Path, associations: int = 1) -> float:
    listener = start_listener(data_dir)
    try:
        return send(listener.settings.node.port, files, associations)
    finally:
        listener.stop()


def listener_memory(files: list[Path], data_dir: Path, every: int) -> dict[int, float]:
    """RSS (MiB) of this process by stored-instance count: at 0, every `every`, and at the end."""
    listener = start_listener(data_dir)
    samples = {0: rss_mib()}
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            stored = listener.stats.snapshot().get("stored", 0)
            mark = stored - stored % every
            if mark and mark not in samples:
                samples[mark] = rss_mib()

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        send(listener.settings.node.port, files)
        samples[len(files)] = rss_mib()
    finally:
        done.set()
        sampler.join()
        listener.stop()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate-files", type=int, default=2000)
    parser.add_argument("--memory-files", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=64, help="image rows = columns")
    args = parser.parse_args()

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory(dir="/dev/shm") as shm:
        work = Path(tmp)
        rate_files = write_series(work / "rate", args.rate_files, size=args.size)
        memory_files = write_series(work / "memory", args.memory_files, size=args.size)
        first = storescp_rate(rate_files, work / "storescp-first")
        on_disk = listener_rate(rate_files, work / "node-disk")
        parallel = listener_rate(rate_files, work / "node-parallel", associations=4)
        on_tmpfs = listener_rate(rate_files, Path(shm) / "node-tmpfs")
        bare = bare_pynetdicom_rate(rate_files)
        fsync_floor = one_fsync_rate(rate_files, work / "fsync")
        spool_floor = spool_rate(rate_files, work / "spool-only")
        last = storescp_rate(rate_files, work / "storescp-last")
        load_rates = os.getloadavg()
        memory = listener_memory(memory_files, work / "node-memory", every=1000)
    reference = (first + last) / 2

    files = f"{args.rate_files} x {args.size}^2 MR"
    print(f"## Ingest over loopback, {files}, one association unless noted\n")
    print(
        f"{os.cpu_count()} CPUs; load average (1/5/15 min) before "
        f"{'/'.join(f'{v:.1f}' for v in load_before)}, after the rate rows "
        f"{'/'.join(f'{v:.1f}' for v in load_rates)}\n"
    )
    print("| receiver | instances/s | vs storescp |")
    print("|---|---:|---:|")
    for name, rate in [
        (f"DCMTK storescp (no fsync; first {first:.0f}, last {last:.0f})", reference),
        ("Listener, data dir on disk (durable)", on_disk),
        ("Listener, on disk, 4 associations at once", parallel),
        ("Listener, data dir on tmpfs", on_tmpfs),
        ("bare pynetdicom SCP (no-op handler)", bare),
        ("floor: one fsync per instance, no network", fsync_floor),
        ("floor: Spool.store alone (file + dir fsync, catalogue commit)", spool_floor),
    ]:
        print(f"| {name} | {rate:.0f} | {rate / reference:.1%} |")
    print(f"\n## Listener RSS (MiB) by instances received, {args.memory_files:,} in total\n")
    print("| " + " | ".join(f"{n:,}" for n in memory) + " |")
    print("|" + "---:|" * len(memory))
    print("| " + " | ".join(f"{rss:.0f}" for rss in memory.values()) + " |")


if __name__ == "__main__":
    main()
