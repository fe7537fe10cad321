"""Day-one history, end to end: from the newest visit's arrival to its amended report.

Run: ``.venv/bin/python benchmarks/priors_amendment.py [--keep DIR]``.

A throw-away Orthanc (the Debian package) plays the PACS and holds three earlier visits of a
patient (simulated 3 mm head phantom, 2 echoes, Siemens series) and another patient's visit.
The node runs in this process as `serve` composes it (tests/support/day_one_priors.py, the
same run tests/dicom_node/priors/test_day_one_history.py asserts on). The newest visit is sent
by C-STORE; the node processes it, finds no comparable prior, queues a fetch, C-MOVEs the
three visits to itself, processes them as back-filled visits, and the amendment path
re-issues the newest report.

Prints the time from the end of the C-STORE of the newest visit to: its first report, the
fetch done, and its report amended with all three priors (previous = 2025, baseline = 2023),
with the number of amendments issued on the way (one per back-filled visit processed after
it), and the wall time of a fixed NumPy workload timed in the same run (a shared machine).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the packages before tests/, whose folders share their names
sys.path.append(str(ROOT / "tests"))  # Orthanc helpers
from support.bench_baseline import fft_baseline_seconds  # noqa: E402
from support.day_one_priors import run_day_one  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="keep data and Orthanc storage here")
    args = parser.parse_args()
    baseline = fft_baseline_seconds()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        seen = run_day_one(args.keep)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            seen = run_day_one(Path(tmp))
    for what, seconds in seen.marks.items():
        print(f"| {what} | {seconds:.1f} s ({seconds / baseline:.0f}x baseline) |")
    print(f"| amendments issued for the newest visit | {len(seen.newest_records) - 1} |")
    print(f"baseline workload: {baseline:.2f} s")


if __name__ == "__main__":
    main()
