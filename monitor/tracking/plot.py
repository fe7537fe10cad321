"""Trend plot: each structure's values over the patient's age against the normative band.

One panel per structure: the healthy median and 2.5-97.5 % band for the patient's age (from the
normative model in use), the patient's visits as points joined in time order. Visits that are
not comparable with the earlier ones are drawn hollow, so a protocol change is visible rather
than read as progression. Without a known age the x axis is the visit date and no band is
drawn (norms are a function of age). Drawn with matplotlib's object API (no global pyplot
state, safe in worker threads) and written atomically.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from monitor.norms import NormativeModel
from monitor.segment.structures import STRUCTURES

DAYS_PER_YEAR = 365.25


@dataclass(frozen=True)
class TrendPoint:
    """One visit's value of one structure (bilateral mean, ppb)."""

    when: datetime | None
    age_years: float | None
    value_ppb: float | None
    comparable: bool = True
    reliable_change: bool = False
    """The change from the previous visit exceeds retest variability (ringed in red)."""


def write_trend_plot(
    path: Path,
    series: Mapping[str, Sequence[TrendPoint]],
    model: NormativeModel | None,
    sex: str | None = None,
    title: str = "Deep grey matter susceptibility over time",
) -> Path:
    """Write a PNG with one panel per structure in `series` (report order); returns `path`."""
    names = [name for name in STRUCTURES if name in series] or sorted(series)
    if not names:
        raise ValueError("nothing to plot: no structure has values")
    columns = 2 if len(names) > 1 else 1
    rows = (len(names) + columns - 1) // columns
    figure = Figure(figsize=(5.2 * columns, 3.6 * rows), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    figure.suptitle(title)
    for index, name in enumerate(names):
        axes = figure.add_subplot(rows, columns, index + 1)
        _panel(axes, name, series[name], model, sex)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=".trend-", suffix=".png")
    try:
        with os.fdopen(handle, "wb") as stream:
            figure.savefig(stream, format="png")
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return path


def _panel(
    axes: Axes,
    name: str,
    points: Sequence[TrendPoint],
    model: NormativeModel | None,
    sex: str | None,
) -> None:
    measured = [p for p in points if p.value_ppb is not None]
    axes.set_title(name.replace("_", " "))
    if not measured:  # withheld at every visit: say so instead of drawing empty axes
        axes.text(
            0.5,
            0.5,
            "no value\n(withheld by segmentation QC)",
            ha="center",
            va="center",
            transform=axes.transAxes,
            color="0.35",
        )
        axes.set_xticks([])
        axes.set_yticks([])
        return
    by_age = bool(measured) and all(p.age_years is not None for p in measured)
    xs = np.array([_x(p, by_age) for p in measured], dtype=float)
    ys = np.array([p.value_ppb for p in measured], dtype=float)
    order = np.argsort(xs)
    curve = model.curve(name) if (model is not None and by_age) else None
    if curve is not None and xs.size:
        low, high = curve.age_range_years
        ages = np.linspace(max(low, xs.min() - 2.0), min(high, xs.max() + 2.0), 50)
        if ages[0] < ages[-1]:
            mean = np.array([curve.mean_ppb(a, sex) for a in ages])
            band = np.array([curve.reference_range_ppb(a, sex) for a in ages])
            axes.fill_between(ages, band[:, 0], band[:, 1], color="0.85", label="2.5-97.5 %")
            axes.plot(ages, mean, color="0.45", linewidth=1.0, label="healthy median")
    axes.plot(xs[order], ys[order], color="tab:blue", linewidth=1.2)
    comparable = np.array([p.comparable for p in measured], dtype=bool)
    axes.scatter(xs[comparable], ys[comparable], color="tab:blue", zorder=3, label="visit")
    if (~comparable).any():
        axes.scatter(
            xs[~comparable],
            ys[~comparable],
            facecolors="white",
            edgecolors="tab:red",
            zorder=3,
            label="not comparable",
        )
    changed = np.array([p.reliable_change for p in measured], dtype=bool)
    if changed.any():
        axes.scatter(
            xs[changed],
            ys[changed],
            s=160,
            facecolors="none",
            edgecolors="tab:red",
            linewidths=1.5,
            zorder=4,
            label="reliable change",
        )
    axes.set_xlabel("age (years)" if by_age else "year")
    axes.set_ylabel("susceptibility (ppb)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small", loc="best")


def _x(point: TrendPoint, by_age: bool) -> float:
    if by_age:
        return float(point.age_years)  # type: ignore[arg-type]
    when = point.when or datetime.min
    return when.year + (when.timetuple().tm_yday - 1) / DAYS_PER_YEAR
