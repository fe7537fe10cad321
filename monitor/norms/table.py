"""Rich tables of a normative model for `qsm-monitor norms show` and `norms fit`."""

from __future__ import annotations

from rich.table import Table

from monitor.norms.model import NormativeModel

SHOWN_AGES_YEARS: tuple[float, ...] = (30.0, 50.0, 70.0)
"""Ages at which expected value and spread are printed: readers check numbers, not formulas."""


_ROW = "{:<16}{:<10}{:<11}{:>4}{:>7}" + "{:>10}" * len(SHOWN_AGES_YEARS)
"""Fixed columns, 78 characters: a terminal of 80 shows every row whole, nothing elided."""


def model_lines(model: NormativeModel) -> list[str]:
    """Title, header and one row per curve: expected value ± SD (ppb) at a few ages."""
    header = _ROW.format(
        "structure", "side", "form", "n", "ages", *(f"{age:g} y" for age in SHOWN_AGES_YEARS)
    )
    rows = []
    for curve in model.curves.values():
        low, high = curve.age_range_years
        at_ages = [
            f"{curve.mean_ppb(age):.1f}±{curve.sd_ppb(age):.1f}" if curve.covers(age) else "-"
            for age in SHOWN_AGES_YEARS
        ]
        n = "-" if curve.n_controls is None else str(curve.n_controls)
        rows.append(
            _ROW.format(curve.structure, curve.side, curve.form, n, f"{low:g}-{high:g}", *at_ages)
        )
    return [
        f"{model.name} ({model.source}; ppb, {model.reference_region} reference)",
        "Protocol- and pipeline-dependent: fit a site model. Value ± SD (ppb) by age.",
        header,
        "-" * len(header),
        *rows,
    ]


def parameter_lines(model: NormativeModel) -> list[str]:
    """One line per curve: its parameters with their 95 % intervals where fitted."""
    return [
        f"{curve.structure} {curve.side} ({curve.form}): "
        + "; ".join(
            f"{name} {value:.3g}" + (_interval(curve.ci[name]) if name in curve.ci else "")
            for name, value in curve.params.items()
        )
        for curve in model.curves.values()
    ]


def band_table(model: NormativeModel) -> Table | None:
    """Controls per age band and curve (site models); None when the model has no counts."""
    curves = [curve for curve in model.curves.values() if curve.age_band_counts]
    if not curves:
        return None
    labels = list(curves[0].age_band_counts)
    table = Table(title="controls per age band")
    table.add_column("structure/side")
    for label in labels:
        table.add_column(label, justify="right")
    for curve in curves:
        table.add_row(curve.key, *(str(curve.age_band_counts.get(label, 0)) for label in labels))
    return table


def _interval(bounds: tuple[float, float]) -> str:
    return f" [{bounds[0]:.3g}, {bounds[1]:.3g}]"
