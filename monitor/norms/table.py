"""Rich tables of a normative model for `qsm-monitor norms show` and `norms fit`."""

from __future__ import annotations

from rich.table import Table

from monitor.norms.model import NormativeModel

SHOWN_AGES_YEARS: tuple[float, ...] = (30.0, 50.0, 70.0)
"""Ages at which expected value and spread are printed: readers check numbers, not formulas."""


def model_table(model: NormativeModel) -> Table:
    """One row per curve: expected value +/- SD at a few ages, parameters with their CIs."""
    table = Table(
        title=f"{model.name} ({model.source}; ppb, {model.reference_region} reference)",
        caption="Protocol- and pipeline-dependent: fit a site model from local controls.",
    )
    for column in ("structure", "side", "form", "n", "ages"):
        table.add_column(column)
    for age in SHOWN_AGES_YEARS:
        table.add_column(f"at {age:g} y", justify="right")
    table.add_column("parameters (95 % CI)")
    for curve in model.curves.values():
        low, high = curve.age_range_years
        at_ages = [
            f"{curve.mean_ppb(age):.1f} ± {curve.sd_ppb(age):.1f}" if curve.covers(age) else "-"
            for age in SHOWN_AGES_YEARS
        ]
        params = "; ".join(
            f"{name} {value:.3g}" + (_interval(curve.ci[name]) if name in curve.ci else "")
            for name, value in curve.params.items()
        )
        table.add_row(
            curve.structure,
            curve.side,
            curve.form,
            "-" if curve.n_controls is None else str(curve.n_controls),
            f"{low:g}-{high:g}",
            *at_ages,
            params,
        )
    return table


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
