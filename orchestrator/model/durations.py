"""Durations as people write them in drills (`250ms`, `30s`, `2m`), held as float seconds."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator, WithJsonSchema

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PATTERN = re.compile(r"^([+-]?\d+(?:\.\d+)?)(us|ms|s|m|h)$")
DURATION_PATTERN = r"^[+-]?\d+(\.\d+)?(us|ms|s|m|h)$"


def parse_duration(value: object) -> float:
    """Parse `250ms`-style text; bare numbers are refused because their unit would be a guess."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"expected a duration such as '250ms', '30s' or '2m', got {value!r}")
    match = _PATTERN.match(value)
    if match is None:
        raise ValueError(f"expected a duration such as '250ms', '30s' or '2m', got {value!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _positive(value: object) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"must be greater than zero, got {value!r}")
    return seconds


def _non_negative(value: object) -> float:
    seconds = parse_duration(value)
    if seconds < 0:
        raise ValueError(f"must not be negative, got {value!r}")
    return seconds


def _non_zero(value: object) -> float:
    seconds = parse_duration(value)
    if seconds == 0:
        raise ValueError(f"must not be zero, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """Render seconds the way a drill would write them, for plans and reports."""
    if seconds == 0:
        return "0s"
    if abs(seconds) < 1:
        return f"{seconds * 1000:g}ms"
    if abs(seconds) < 120:
        return f"{seconds:g}s"
    return f"{seconds / 60:g}m"


_SCHEMA = WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "examples": ["250ms", "30s", "2m"]})

PositiveDuration = Annotated[float, BeforeValidator(_positive), _SCHEMA]
NonNegativeDuration = Annotated[float, BeforeValidator(_non_negative), _SCHEMA]
SignedDuration = Annotated[float, BeforeValidator(_non_zero), _SCHEMA]
"""An offset such as `+90s` or `-5m` (clock skew)."""
