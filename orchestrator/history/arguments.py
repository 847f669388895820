"""What the history commands take: labels, `--since` and `--baseline`, parsed. Apart from the rest of the
history, so that the `--label` of every command imports nothing more."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

_AGE = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d|w)$")
_AGE_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
_LABEL_KEY = re.compile(r"^[A-Za-z0-9_.\-/]+$")


def aware(moment: datetime) -> datetime:
    """A time without an offset (a hand-written report, a date given) is read as UTC, as drillctl writes every
    time."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def parse_labels(items: Iterable[str]) -> dict[str, str]:
    """`key=value` pairs (the value may be empty, the key may not); a repeated key keeps its last value."""
    labels: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not _LABEL_KEY.match(key):
            raise ValueError(f"expected key=value with a key of letters, digits and _.-/, got {item!r}")
        labels[key] = value
    return labels


def parse_baseline(spec: str) -> int:
    """`history:last=N`: how many of the latest passing runs make a rolling baseline."""
    kind, _, last = spec.partition(":last=")
    if kind != "history" or not last.isdigit() or int(last) < 1:
        raise ValueError(f"expected history:last=N with N of 1 or more (e.g. history:last=10), got {spec!r}")
    return int(last)


def parse_since(text: str, now: datetime) -> datetime:
    """A moment (`2026-11-30`, `2026-11-30T12:00:00+01:00`; UTC without an offset) or an age (`90m`, `12h`, `7d`)."""
    age = _AGE.match(text)
    if age is not None:
        return now - timedelta(seconds=float(age.group(1)) * _AGE_UNITS[age.group(2)])
    try:
        return aware(datetime.fromisoformat(text))
    except ValueError:
        raise ValueError(
            f"expected a date (2026-11-30), a time (2026-11-30T12:00Z) or an age (90m, 12h, 7d, 2w), got {text!r}"
        ) from None
