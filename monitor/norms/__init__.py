"""Normative susceptibility model: expected value and spread per structure, side, age and sex."""

from monitor.norms.model import (
    NormativeModel,
    NormCurve,
    NormScore,
    NormsError,
    default_model,
    load_model,
    save_model,
    score_record,
)

__all__ = [
    "NormCurve",
    "NormScore",
    "NormativeModel",
    "NormsError",
    "default_model",
    "load_model",
    "save_model",
    "score_record",
]
