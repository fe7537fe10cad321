"""Normative susceptibility per structure and side as a function of age (and sex).

Two curve forms, because the deep grey nuclei age differently:

* ``"saturating"``: ``plateau - rise * exp(-age / tau)``. Iron in the basal ganglia accumulates
  fast in childhood and levels off in adulthood (Li et al. 2014; Treit et al. 2021).
* ``"linear"``: ``intercept + slope * (age - ref_age)``. Thalamic susceptibility is nearly
  flat in adults (a mix of iron and diamagnetic myelin), so a straight line is all the data
  support.

Both add ``male_offset_ppb`` for men (0 where a sex difference is not supported) and carry a
spread that may widen with age: ``sd(age) = sd_ppb + sd_slope_ppb_per_year * (age - ref_age)``,
because inter-subject variability grows with age (Treit et al. 2021). A curve is only valid in
the age range of the controls behind it; outside it we return no score rather than extrapolate.

Values are in ppb, referenced to the whole-brain mean, and depend on the acquisition protocol
and the processing pipeline: a site model fitted from local controls replaces the default.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from scipy.stats import norm

from monitor.errors import MonitorError
from monitor.segment.structures import SIDES, STRUCTURES

CurveForm = Literal["saturating", "linear"]
Interpretation = Literal["L", "N", "H"]

NORM_SIDES: tuple[str, ...] = (*SIDES, "bilateral")
"""Sides a curve may describe: each hemisphere, and both pooled."""

CURVE_PARAMETERS: Mapping[str, tuple[str, ...]] = {
    "saturating": ("plateau_ppb", "rise_ppb", "tau_years"),
    "linear": ("intercept_ppb", "slope_ppb_per_year"),
}
"""Mean-curve parameters per form; every curve also has the shared ones below."""

SHARED_PARAMETERS: tuple[str, ...] = ("male_offset_ppb", "sd_ppb", "sd_slope_ppb_per_year")

STRUCTURE_FORMS: Mapping[str, CurveForm] = {
    "thalamus": "linear",
    "caudate": "saturating",
    "putamen": "saturating",
    "globus_pallidus": "saturating",
}
"""The curve form each structure is fitted with (see the module docstring for why)."""

REF_AGE_YEARS = 45.0
"""Age at which linear intercepts and SDs are stated: mid-adulthood, where controls are dense."""

REFERENCE_RANGE_Z = float(norm.ppf(0.975))
"""The 2.5-97.5 % reference range is mean +/- 1.96 SD."""

MIN_SD_PPB = 0.5
"""Floor for an age-dependent SD that a steep negative slope would drive to zero or below."""

DEFAULT_MODEL_RESOURCE = "default_model.json"


class NormsError(MonitorError, ValueError):
    """A normative model file or request is invalid; the message says what and where."""


@dataclass(frozen=True)
class NormScore:
    """Where one measurement lies relative to healthy people of the same age (and sex)."""

    value_ppb: float
    expected_ppb: float
    sd_ppb: float
    z: float
    percentile: float
    reference_range_ppb: tuple[float, float]
    interpretation: Interpretation

    def as_record(self) -> dict[str, Any]:
        """The fields the processing record carries (docs: notes/record_schema.md)."""
        return {
            "z": round(self.z, 3),
            "percentile": round(self.percentile, 2),
            "reference_range_ppb": [round(v, 2) for v in self.reference_range_ppb],
            "interpretation": self.interpretation,
        }


def score_record(score: NormScore | None) -> dict[str, Any]:
    """Record fields of a score, all null when there is none (no norms for the age)."""
    if score is not None:
        return score.as_record()
    return {"z": None, "percentile": None, "reference_range_ppb": None, "interpretation": None}


@dataclass(frozen=True)
class NormCurve:
    """Expected value and spread for one structure and side."""

    structure: str
    side: str
    form: CurveForm
    params: Mapping[str, float]
    ref_age_years: float
    age_range_years: tuple[float, float]
    ci: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    """95 % bootstrap intervals per parameter (site models); empty for the default model."""
    n_controls: int | None = None
    age_band_counts: Mapping[str, int] = field(default_factory=dict)
    sex_supported: bool = False
    """False: the data did not support a sex covariate and ``male_offset_ppb`` is 0."""

    def __post_init__(self) -> None:
        if self.structure not in STRUCTURES:
            raise NormsError(f"unknown structure {self.structure!r}; expected one of {STRUCTURES}")
        if self.side not in NORM_SIDES:
            raise NormsError(f"unknown side {self.side!r}; expected one of {NORM_SIDES}")
        if self.form not in CURVE_PARAMETERS:
            raise NormsError(f"unknown curve form {self.form!r} for {self.key}")
        missing = set(CURVE_PARAMETERS[self.form] + SHARED_PARAMETERS) - set(self.params)
        if missing:
            raise NormsError(f"curve {self.key} lacks parameters {sorted(missing)}")
        low, high = self.age_range_years
        if not low < high:
            raise NormsError(f"curve {self.key}: age range {low}-{high} is empty")

    @property
    def key(self) -> str:
        return f"{self.structure}/{self.side}"

    def covers(self, age_years: float) -> bool:
        low, high = self.age_range_years
        return low <= age_years <= high

    def mean_ppb(self, age_years: float, sex: str | None = None) -> float:
        """Expected value; an unknown or other sex gets half the male offset (the sexes' mid)."""
        p = self.params
        if self.form == "saturating":
            base = p["plateau_ppb"] - p["rise_ppb"] * math.exp(-age_years / p["tau_years"])
        else:
            base = p["intercept_ppb"] + p["slope_ppb_per_year"] * (age_years - self.ref_age_years)
        return base + p["male_offset_ppb"] * _male_weight(sex)

    def sd_ppb(self, age_years: float) -> float:
        p = self.params
        sd = p["sd_ppb"] + p["sd_slope_ppb_per_year"] * (age_years - self.ref_age_years)
        return max(sd, MIN_SD_PPB)

    def reference_range_ppb(self, age_years: float, sex: str | None = None) -> tuple[float, float]:
        """The 2.5-97.5 % range of healthy values at this age (the trend plot's band)."""
        expected, sd = self.mean_ppb(age_years, sex), self.sd_ppb(age_years)
        return expected - REFERENCE_RANGE_Z * sd, expected + REFERENCE_RANGE_Z * sd

    def score(self, value_ppb: float, age_years: float, sex: str | None = None) -> NormScore:
        expected = self.mean_ppb(age_years, sex)
        sd = self.sd_ppb(age_years)
        z = (value_ppb - expected) / sd
        low, high = self.reference_range_ppb(age_years, sex)
        interpretation: Interpretation = (
            "L" if value_ppb < low else "H" if value_ppb > high else "N"
        )
        return NormScore(
            value_ppb=value_ppb,
            expected_ppb=expected,
            sd_ppb=sd,
            z=z,
            percentile=100.0 * float(norm.cdf(z)),
            reference_range_ppb=(low, high),
            interpretation=interpretation,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "structure": self.structure,
            "side": self.side,
            "form": self.form,
            "params": dict(self.params),
            "ref_age_years": self.ref_age_years,
            "age_range_years": list(self.age_range_years),
            "ci": {name: list(bounds) for name, bounds in self.ci.items()},
            "n_controls": self.n_controls,
            "age_band_counts": dict(self.age_band_counts),
            "sex_supported": self.sex_supported,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NormCurve:
        try:
            return cls(
                structure=data["structure"],
                side=data["side"],
                form=data["form"],
                params={name: float(value) for name, value in data["params"].items()},
                ref_age_years=float(data["ref_age_years"]),
                age_range_years=_pair(data["age_range_years"]),
                ci={name: _pair(bounds) for name, bounds in data.get("ci", {}).items()},
                n_controls=data.get("n_controls"),
                age_band_counts=dict(data.get("age_band_counts", {})),
                sex_supported=bool(data.get("sex_supported", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, NormsError):
                raise
            raise NormsError(f"invalid curve entry {dict(data)!r:.120}: {exc!r}") from None


@dataclass(frozen=True)
class NormativeModel:
    """All curves of one model, plus where they came from."""

    name: str
    source: Literal["default", "site"]
    reference_region: str
    curves: Mapping[tuple[str, str], NormCurve]
    description: str = ""

    def curve(self, structure: str, side: str = "bilateral") -> NormCurve | None:
        return self.curves.get((structure, side))

    def score(
        self,
        structure: str,
        side: str,
        value_ppb: float | None,
        age_years: float | None,
        sex: str | None = None,
    ) -> NormScore | None:
        """None when the model cannot judge: no value, no age, no curve, or age out of range."""
        curve = self.curve(structure, side)
        if value_ppb is None or age_years is None or curve is None or not curve.covers(age_years):
            return None
        if not math.isfinite(value_ppb):
            return None
        return curve.score(value_ppb, age_years, sex)

    def describe(self) -> dict[str, str]:
        """The record's ``norms`` block."""
        return {"name": self.name, "source": self.source}

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "reference_region": self.reference_region,
            "units": "ppb",
            "description": self.description,
            "curves": [curve.to_json() for curve in self.curves.values()],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NormativeModel:
        try:
            curves = [NormCurve.from_json(entry) for entry in data["curves"]]
            source = data["source"]
            name = str(data["name"])
        except KeyError as exc:
            raise NormsError(f"normative model lacks {exc}") from None
        except TypeError:
            raise NormsError(
                "not a normative model: expected a JSON object with name, source and curves "
                "(as `qsm-monitor norms fit` writes)"
            ) from None
        if source not in ("default", "site"):
            raise NormsError(f"model source must be 'default' or 'site', not {source!r}")
        keyed = {(curve.structure, curve.side): curve for curve in curves}
        if len(keyed) != len(curves):
            raise NormsError("normative model has two curves for the same structure and side")
        return cls(
            name=name,
            source=source,
            reference_region=str(data.get("reference_region", "whole_brain")),
            curves=keyed,
            description=str(data.get("description", "")),
        )


def _male_weight(sex: str | None) -> float:
    return {"M": 1.0, "F": 0.0}.get((sex or "").upper(), 0.5)


def _pair(values: Any) -> tuple[float, float]:
    low, high = values
    return float(low), float(high)


def default_model() -> NormativeModel:
    """The shipped literature model (docs/norms.md): protocol-dependent, replace with a site one."""
    text = resources.files("monitor.norms").joinpath(DEFAULT_MODEL_RESOURCE).read_text("utf-8")
    return NormativeModel.from_json(json.loads(text))


def load_model(path: Path | None = None) -> NormativeModel:
    """A model file (e.g. from ``norms fit``), or the shipped default when ``path`` is None."""
    if path is None:
        return default_model()
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NormsError(f"normative model file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise NormsError(f"normative model file {path} is not valid JSON: {exc}") from None
    return NormativeModel.from_json(data)


def save_model(model: NormativeModel, path: Path) -> None:
    """Write via a temporary name so a crash never leaves a half model that looks whole."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(model.to_json(), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
