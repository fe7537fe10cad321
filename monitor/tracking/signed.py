"""Signed numbers in the text a reader sees (risk reasons, tables)."""

from __future__ import annotations

__all__ = ["signed"]


def signed(value: float, decimals: int = 1) -> str:
    """`value` with its sign at `decimals` places, never "-0.0": a change of -0.04 ppb is no
    change, and a minus sign on it reads as a fall."""
    return f"{round(value, decimals) + 0.0:+.{decimals}f}"
