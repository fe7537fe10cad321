"""Load a frozen dataclass from stored JSON, keeping only the keys the class declares.

Stored records outlive the code that wrote them: a newer node may have added a key, an older
one may lack one. Loading tolerates both, while the constructors stay strict, so a misspelt
name in code is a TypeError/AttributeError instead of a silently dropped value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any


def known_fields(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of `data` that name a field of dataclass `cls` (others are ignored)."""
    names = {f.name for f in fields(cls)}
    return {name: value for name, value in data.items() if name in names}


def optional_float(value: Any) -> float | None:
    """A stored number as float, None kept (JSON has no NaN: the pipeline stores null)."""
    return None if value is None else float(value)
