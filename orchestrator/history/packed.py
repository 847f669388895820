"""A run's trend figures packed into its own `runs` row: what `series` reads instead of a row per figure.

Each run keeps which figures it has (a layout: each SLA's measured value, then each fault's
TREND_FAULT_METRICS, as subject, metric and unit; stored once per distinct list in `trend_layouts`) and
their values as one string of float64s (NaN where a value was not measured). Trends then read 10,000 runs
as one ordered scan of `runs`, and a figure becomes a column with a few C calls per layout (a `join`, an
`array`, a slice), where joining and pivoting the `slas` and `faults` tables took most of `drillctl
history`'s time (bench/history.py). Those tables stay the records' truth (baselines read them); the packed
values are written from the same record, in the same transaction.
"""

from __future__ import annotations

import json
import sys
from array import array
from collections.abc import Iterable, Mapping, Sequence
from typing import cast

from orchestrator.history.model import TREND_FAULT_METRICS
from orchestrator.history.store import HistoryError

Figure = tuple[str, str, str]
"""subject (`sla <name>`, `fault <name>`), metric (`measured`, a fault's metric), unit."""
Values = tuple[float | None, ...]

_NOT_MEASURED = float("nan")
_BIG_ENDIAN = sys.byteorder == "big"  # stored little-endian, whichever machine reads a shared history
_NOT_MEASURED_BYTES = array("d", [_NOT_MEASURED]).tobytes()
"""Every NaN is packed as this one (see `pack`), so a column without it has no value to turn into None."""


def trend_of(
    slas: Iterable[tuple[str, str, float | None]], faults: Iterable[tuple[str, float | None, float | None]]
) -> tuple[tuple[Figure, ...], list[float | None]]:
    """A run's figures in order from its SLAs (name, unit, measured) and faults (name and each of
    TREND_FAULT_METRICS), with their values; a name a foreign report repeats in one run counts once, at its
    largest value (its first unit)."""
    found: dict[tuple[str, str], tuple[str, float | None]] = {}

    def add(subject: str, metric: str, unit: str, value: float | None) -> None:
        known = found.get((subject, metric))
        if known is None:
            found[(subject, metric)] = (unit, value)
        elif value is not None and (known[1] is None or value > known[1]):
            found[(subject, metric)] = (known[0], value)

    for name, unit, measured in slas:
        add(f"sla {name}", "measured", unit, measured)
    for fault, *values in faults:
        for metric, value in zip(TREND_FAULT_METRICS, values, strict=True):
            add(f"fault {fault}", metric, "s", value)
    return tuple((s, m, unit) for (s, m), (unit, _) in found.items()), [v for _, v in found.values()]


def layout_text(figures: Sequence[Figure]) -> str:
    """A layout as `trend_layouts.figures` keeps it (JSON, ASCII: any name survives either database)."""
    return json.dumps([list(f) for f in figures])


def pack(values: Sequence[float | None]) -> bytes:
    """The values as float64s, None (and any NaN a foreign report held) as one and the same NaN."""
    packed = array("d", [_NOT_MEASURED if v is None or v != v else v for v in values])
    if _BIG_ENDIAN:
        packed.byteswap()
    return packed.tobytes()


def unpack_layout(text: str) -> tuple[Figure, ...]:
    return tuple((str(s), str(m), str(u)) for s, m, u in json.loads(text))


def columns(
    layouts: Mapping[int, tuple[Figure, ...]], keys: Sequence[int | None], packed: Sequence[bytes | None]
) -> list[tuple[Figure, Values]]:
    """The figures of runs (their layout keys and packed values, oldest first) as one column each: every SLA's
    measured value, then every fault's metrics, each in the order it first appears (a run's own order breaks
    ties) with the unit it first had; None where a run has no such figure or did not measure it."""
    n = len(keys)
    groups: dict[int | None, Sequence[int]] = {}
    if keys and keys.count(keys[0]) == n:  # the usual history: every run of a drill has the same figures
        groups[keys[0]] = range(n)
    else:
        by_key: dict[int | None, list[int]] = {}
        for i, key in enumerate(keys):
            by_key.setdefault(key, []).append(i)
        groups.update(by_key)
    found: dict[tuple[str, str], tuple[str, list[float | None]]] = {}
    for key, runs in groups.items():
        figures = () if key is None else layouts.get(key)
        if figures is None:
            raise HistoryError(f"runs name trend layout {key}, which the history does not hold: it is damaged")
        if not figures:
            continue
        whole = len(runs) == n
        chosen = packed if whole else [packed[i] for i in runs]
        data = b"".join(p or b"" for p in chosen) if None in chosen else b"".join(cast("Sequence[bytes]", chosen))
        width = len(figures)
        if len(data) != 8 * width * len(runs):
            raise HistoryError(f"the packed trend figures of layout {key} do not match it: the history is damaged")
        values = array("d")
        values.frombytes(data)
        if _BIG_ENDIAN:
            values.byteswap()
        for j, (subject, metric, unit) in enumerate(figures):
            part = values[j::width]
            column: list[float | None] = list(part.tolist())
            if _NOT_MEASURED_BYTES in part.tobytes():  # found in C: most columns have no None to put back
                column = [None if v != v else v for v in column]
            if whole:
                found[(subject, metric)] = (unit, column)
                continue
            merged = found.setdefault((subject, metric), (unit, [None] * n))[1]
            for i, v in zip(runs, column, strict=True):
                merged[i] = v
    ordered = sorted(found, key=lambda f: f[0].startswith("fault "))  # stable: first appearance within each
    return [((s, m, found[(s, m)][0]), tuple(found[(s, m)][1])) for s, m in ordered]
