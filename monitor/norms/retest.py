"""Site scan-rescan SD from repeat scans of the same people (`qsm-monitor norms retest`).

The change rules judge a patient's change against the scan-rescan noise, and that noise is
a property of the site's scanner, protocol and this pipeline: the literature default (2.4 ppb,
docs/norms.md) assumes a modern, stable 3 T protocol. Repeat scans of a few people (rescanned
within days, when nothing biological changes) measure it locally.

Input CSV, one row per scan, structure and side (a subject's repeated rows are its scans):

    subject_id,structure,side,mean_ppb
    r01,thalamus,bilateral,-1.3
    r01,thalamus,bilateral,0.4

Estimate per structure and side: the pooled within-subject variance
``s^2 = sum_i sum_j (x_ij - mean_i)^2 / df`` with ``df = sum_i (n_i - 1)``, and its 95 %
interval from ``df * s^2 / SD^2 ~ chi-square(df)`` (normal scan errors with one SD for
everyone).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from scipy.stats import chi2

from monitor.csv_input import number, read_rows
from monitor.norms.controls_csv import structure_and_side
from monitor.norms.model import NormsError
from monitor.segment.structures import STRUCTURES
from monitor.settings import MIN_RETEST_SD_PPB

__all__ = [
    "MIN_DF",
    "RETEST_COLUMNS",
    "RetestEstimate",
    "RetestScan",
    "estimate_retest_sd",
    "read_retest_csv",
    "settings_lines",
]

RETEST_COLUMNS: tuple[str, ...] = ("subject_id", "structure", "side", "mean_ppb")
MIN_DF = 10
"""Below this many degrees of freedom the interval spans more than a factor of ~2.3 and a
warning says so: a handful of rescans barely pins the SD down."""
CONFIDENCE = 0.95


@dataclass(frozen=True)
class RetestScan:
    subject_id: str
    structure: str
    side: str
    mean_ppb: float


@dataclass(frozen=True)
class RetestEstimate:
    structure: str
    side: str
    sd_ppb: float
    ci_ppb: tuple[float, float]
    """95 % chi-square interval of the SD."""
    n_subjects: int
    """Subjects with at least two scans (the others carry no within-subject information)."""
    n_scans: int
    df: int


def read_retest_csv(path: Path) -> list[RetestScan]:
    """All scans, validated; NormsError naming the file and line of the first problem."""
    scans = []
    for row in read_rows(path, RETEST_COLUMNS, NormsError, "retest"):
        if not row.cells["subject_id"]:
            raise NormsError(f"{row.where}: subject_id is empty")
        structure, side = structure_and_side(row.cells, row.where, NormsError)
        value = number(row.cells["mean_ppb"], "mean_ppb", row.where, NormsError)
        scans.append(RetestScan(row.cells["subject_id"], structure, side, value))
    return scans


def estimate_retest_sd(scans: Sequence[RetestScan]) -> list[RetestEstimate]:
    """Pooled within-subject SD and its interval per structure and side with any repeats."""
    groups: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for scan in scans:
        groups[(scan.structure, scan.side)][scan.subject_id].append(scan.mean_ppb)
    estimates = []
    for (structure, side), by_subject in sorted(groups.items()):
        repeated = [values for values in by_subject.values() if len(values) >= 2]
        df = sum(len(values) - 1 for values in repeated)
        if df == 0:
            continue
        squares = sum(
            sum((v - sum(values) / len(values)) ** 2 for v in values) for values in repeated
        )
        tail = (1.0 - CONFIDENCE) / 2
        estimates.append(
            RetestEstimate(
                structure=structure,
                side=side,
                sd_ppb=math.sqrt(squares / df),
                ci_ppb=(
                    math.sqrt(squares / float(chi2.isf(tail, df))),
                    math.sqrt(squares / float(chi2.ppf(tail, df))),
                ),
                n_subjects=len(repeated),
                n_scans=sum(len(values) for values in repeated),
                df=df,
            )
        )
    if not estimates:
        raise NormsError("no subject has two scans of the same structure and side")
    return estimates


def settings_lines(
    estimates: Sequence[RetestEstimate],
    current_ppb: Mapping[str, float],
    current_side_ppb: Mapping[str, float],
) -> list[str]:
    """The `[risk]` lines to paste into the settings file.

    `retest_sd_ppb` from the bilateral estimates (the rules judge bilateral values), with the
    current value, marked as such, for structures without; `side_retest_sd_ppb` (the per-side
    change fields) from the left and right estimates pooled (one SD per side is assumed), with
    any configured value kept for structures without side repeats and the line left out when
    there is nothing to say (the settings' sqrt(2) x bilateral default then applies).
    """
    bilateral = {
        e.structure: round(e.sd_ppb, 2)
        for e in estimates
        if e.side == "bilateral" and _usable(e.sd_ppb)
    }
    values = ", ".join(f"{s} = {bilateral.get(s, current_ppb[s])}" for s in STRUCTURES)
    kept = [s for s in STRUCTURES if s not in bilateral]
    lines = ["[risk]", f"retest_sd_ppb = {{ {values} }}"]
    if kept:
        lines.append(f"# no usable bilateral repeats for {', '.join(kept)}: current value kept")
    pooled = _pooled_side_sd(estimates)
    sides = {**current_side_ppb, **{s: sd for s, sd in pooled.items() if _usable(sd)}}
    if any(not _usable(sd) for sd in pooled.values()):
        lines.append("# side repeats with no scan-rescan difference: current side values kept")
    if sides:
        values = ", ".join(f"{s} = {sides[s]}" for s in STRUCTURES if s in sides)
        lines.append(f"side_retest_sd_ppb = {{ {values} }}")
    below = [s for s in STRUCTURES if s in pooled and s in bilateral and pooled[s] < bilateral[s]]
    if below:
        lines.append(
            f"# side SD below the bilateral one for {', '.join(below)}: one side averages half "
            "the voxels, so expect 1-1.41x the bilateral SD; rescan more people to pin it down"
        )
    return lines


def _usable(sd_ppb: float) -> bool:
    """Below the values' precision the repeats did not vary: the same scan listed twice, or
    values rounded too coarsely; such an SD would make every difference a change."""
    return round(sd_ppb, 2) >= MIN_RETEST_SD_PPB


def _pooled_side_sd(estimates: Sequence[RetestEstimate]) -> dict[str, float]:
    """Per structure, the left and right within-subject variances pooled by their degrees of
    freedom, as an SD rounded to 0.01 ppb."""
    squares: dict[str, float] = defaultdict(float)
    dfs: dict[str, int] = defaultdict(int)
    for e in estimates:
        if e.side != "bilateral":
            squares[e.structure] += e.df * e.sd_ppb**2
            dfs[e.structure] += e.df
    return {s: round(math.sqrt(squares[s] / dfs[s]), 2) for s in squares}
