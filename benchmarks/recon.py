"""Reconstruction speed: per stage, warm and cold, in FFT equivalents, with peak memory.

Run: ``.venv/bin/python benchmarks/recon.py [--shape 256 256 128] [--echoes 5]``.

Measures on a simulated 1 mm head (the built-in phantom) written as dcm2niix-style files:

- warm: `reconstruct` in this process after one compiling run (per stage and total);
- cold CLI: a fresh ``qsm-monitor recon`` process, first with an empty persistent compilation
  cache, then again with the cache that first run filled;
- the warm total divided by the time of one complex64 FFT of the padded volume, measured in the
  same run, so figures from loaded or different machines stay comparable;
- peak resident memory of each CLI process (``wait4`` rusage) and of this one.

Prints a markdown table with the targets (2 CPU cores): warm <= 60 s, cold CLI <= 120 s,
<= 400 FFT equivalents, peak memory <= 6 GB.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp

from monitor.nifti.reader import load_acquisition
from monitor.phantom import PhantomConfig, simulate_phantom
from monitor.phantom.dcm2niix_style import write_dcm2niix_style
from monitor.recon.compile_cache import enable_compilation_cache
from monitor.recon.fourier import padded_shape
from monitor.recon.pipeline import reconstruct
from monitor.settings import ReconSettings
from monitor.types import Acquisition

TARGET_WARM_S = 60.0
TARGET_COLD_S = 120.0
TARGET_FFT_EQUIVALENTS = 400.0
TARGET_PEAK_GB = 6.0
FFT_REPEATS = 5


@dataclass(frozen=True)
class ChildRun:
    seconds: float
    peak_gb: float


@dataclass(frozen=True)
class Measurements:
    stages: list[tuple[str, float]]
    warm_s: float
    fft_s: float
    cold_empty: ChildRun
    cold_cached: ChildRun
    self_peak_gb: float
    load_before: float
    load_after: float


def main() -> None:
    args = _arguments()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="qsm-bench-") as scratch:
        work = Path(scratch)
        acq = _phantom(tuple(args.shape), args.echoes, args.voxel_mm)
        magnitudes, phases = write_dcm2niix_style(acq, work / "input")
        del acq
        fft_s = _fft_seconds(load_acquisition(magnitudes, phases).acquisition)
        stages, warm_s = _warm_in_process(magnitudes, phases, work / "jax-cache-in-process")
        cache = work / "jax-cache"
        cold_empty = _cli_run(magnitudes, phases, work, cache)
        cold_cached = _cli_run(magnitudes, phases, work, cache)
    measured = Measurements(
        stages,
        warm_s,
        fft_s,
        cold_empty,
        cold_cached,
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
        load_before,
        os.getloadavg()[0],
    )
    _print_table(args, measured)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[256, 256, 128])
    parser.add_argument("--echoes", type=int, default=5)
    parser.add_argument("--voxel-mm", type=float, default=1.0)
    return parser.parse_args()


def _phantom(shape: tuple[int, int, int], n_echoes: int, voxel_mm: float) -> Acquisition:
    config = PhantomConfig(shape=shape, voxel_mm=(voxel_mm,) * 3, n_echoes=n_echoes)
    return simulate_phantom(config, 0).acquisition


def _fft_seconds(acq: Acquisition) -> float:
    """Best of a few timed FFTs of the padded grid, compiled first (what the pipeline pays)."""
    shape = padded_shape(acq.shape, acq.voxel_mm)
    volume = jnp.zeros(shape, dtype=jnp.complex64) + 1.0
    fft = jax.jit(jnp.fft.fftn)
    fft(volume).block_until_ready()
    times = []
    for _ in range(FFT_REPEATS):
        start = time.perf_counter()
        fft(volume).block_until_ready()
        times.append(time.perf_counter() - start)
    return min(times)


def _warm_in_process(
    magnitudes: list[Path], phases: list[Path], cache: Path
) -> tuple[list[tuple[str, float]], float]:
    """Second in-process run, after one that compiled every stage; the pipeline times stages."""
    enable_compilation_cache(cache)
    acq = load_acquisition(magnitudes, phases).acquisition
    settings = ReconSettings()
    reconstruct(acq, settings)
    start = time.perf_counter()
    result = reconstruct(acq, settings)
    total = time.perf_counter() - start
    return list(result.qc["seconds"].items()), total


SPAWNER = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""
"""Starts the CLI from a small process. Linux children inherit their parent's peak-RSS mark
across fork and exec, so a CLI forked straight from this (large) process would report this
process's peak, not its own."""


def _cli_run(magnitudes: list[Path], phases: list[Path], work: Path, cache: Path) -> ChildRun:
    """One fresh `qsm-monitor recon` process: wall time and its own peak resident memory."""
    config = work / "bench.toml"
    config.write_text(f'[recon]\ncompilation_cache_dir = "{cache}"\n', encoding="utf-8")
    command = [str(Path(sys.executable).with_name("qsm-monitor")), "recon", "--out", str(work)]
    command += [f"--mag={p}" for p in magnitudes] + [f"--phase={p}" for p in phases]
    command += ["--config", str(config)]
    log = work / "cli-stderr.txt"
    with log.open("wb") as stderr:
        start = time.perf_counter()
        spawned = subprocess.run(
            [sys.executable, "-c", SPAWNER, *command], stdout=subprocess.PIPE, stderr=stderr
        )
        seconds = time.perf_counter() - start
    exit_code, max_rss_kb = spawned.stdout.split()
    if int(exit_code) != 0:
        raise SystemExit(f"qsm-monitor recon failed:\n{log.read_text()[-2000:]}")
    return ChildRun(seconds, int(max_rss_kb) / 1024**2)


def _print_table(args: argparse.Namespace, m: Measurements) -> None:
    shape = "x".join(map(str, args.shape))
    equivalents = m.warm_s / m.fft_s
    peak = max(m.cold_empty.peak_gb, m.cold_cached.peak_gb)
    print(
        f"{shape} voxels, {args.voxel_mm} mm, {args.echoes} echoes; jax {jax.__version__} on "
        f"{jax.devices()[0].platform}, {os.cpu_count()} CPUs; load average "
        f"{m.load_before:.1f} before, {m.load_after:.1f} after\n"
    )
    print("| Stage (warm, in process) | Seconds |\n|---|---:|")
    for name, seconds in m.stages:
        print(f"| {name} | {seconds:.2f} |")
    rows = [
        ("Warm total", f"{m.warm_s:.1f} s", TARGET_WARM_S, m.warm_s, "s"),
        ("One padded complex64 FFT", f"{m.fft_s * 1e3:.0f} ms", None, 0.0, ""),
        (
            "Warm total in FFT equivalents",
            f"{equivalents:.0f}",
            TARGET_FFT_EQUIVALENTS,
            equivalents,
            "",
        ),
        (
            "Cold CLI, empty compile cache",
            f"{m.cold_empty.seconds:.1f} s",
            TARGET_COLD_S,
            m.cold_empty.seconds,
            "s",
        ),
        (
            "Cold CLI, warm compile cache",
            f"{m.cold_cached.seconds:.1f} s",
            TARGET_COLD_S,
            m.cold_cached.seconds,
            "s",
        ),
        ("Peak memory, CLI process", f"{peak:.2f} GB", TARGET_PEAK_GB, peak, "GB"),
        ("Peak memory, benchmark process", f"{m.self_peak_gb:.2f} GB", None, 0.0, ""),
    ]
    print("\n| Measure | Value | Target | Met |\n|---|---:|---:|:---:|")
    for name, value, target, number, unit in rows:
        if target is None:
            print(f"| {name} | {value} | | |")
        else:
            met = "yes" if number <= target else "**no**"
            print(f"| {name} | {value} | <= {f'{target:g} {unit}'.strip()} | {met} |")


if __name__ == "__main__":
    main()
