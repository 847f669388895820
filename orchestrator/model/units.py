"""The units a figure is measured in: apart from the verdicts, so that reading the history imports no more."""

from __future__ import annotations

from typing import Literal

Unit = Literal["s", "ratio", "count"]
"""Seconds, a share between 0 and 1, or a number of operations."""
_UNITS: dict[str, Unit] = {"s": "s", "ratio": "ratio", "count": "count"}


def unit_of(text: str) -> Unit:
    """A unit as stored (report.json, the history); seconds for anything else, as before counts existed."""
    return _UNITS.get(text, "s")
