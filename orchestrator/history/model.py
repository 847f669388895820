"""What the history keeps of a run, and how it is asked for: plain data, shared by every store backend."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Literal, cast

from orchestrator.model.units import Unit

SCHEMA_VERSION = 3
"""Of the logical schema (runs, labels, slas, faults, gameday_drills, trend_layouts, meta); a backend refuses a
store of a newer version and brings an older one up to this (`sql.MIGRATIONS`)."""


TREND_FAULT_METRICS: tuple[str, ...] = ("time_to_recover", "unavailability")
"""The fault figures a trend shows, after each SLA's measured value (a baseline compares them all)."""


@dataclass(frozen=True)
class SlaFigure:
    """One SLA of one run as judged: the measured value and how it stood against its threshold."""

    name: str
    type: str
    unit: Unit
    passed: bool
    measured: float | None
    threshold: float
    margin: float | None
    resolution: float | None


@dataclass(frozen=True)
class FaultFigure:
    """How one fault of one run hit and how the system recovered (None: did not happen while observed)."""

    fault: str
    recovery: str
    time_to_impact: float | None
    time_to_recover: float | None
    unavailability: float
    longest_outage: float
    resolution: float


@dataclass(frozen=True)
class GameDayDrill:
    """One drill of a game day as it ended: its status (the drill report's, else preflight, error or skipped)
    and its run, which the history holds as a drill entry of its own (None: it never ran)."""

    drill: str
    status: str
    run_id: str | None


Kind = Literal["drill", "gameday"]


@dataclass(frozen=True)
class RunRecord:
    """A finished run as the history holds it; `run_id` is unique in a store."""

    run_id: str
    drill: str
    started_at: datetime
    """Timezone-aware; stored in UTC."""
    finished_at: datetime
    status: str
    """passed, failed, aborted, baseline_failed or error (report.json's `run.status`)."""
    verdict: str
    """PASS, FAIL, ABORTED or ERROR."""
    labels: Mapping[str, str] = field(default_factory=dict)
    slas: tuple[SlaFigure, ...] = ()
    faults: tuple[FaultFigure, ...] = ()
    source: str | None = None
    """Where its report.json was when it was recorded (a game day's: its report folder)."""
    kind: Kind = "drill"
    """A game day is an entry of its own: `drill` is then the game day's name, `status` passed, failed or
    stopped, no SLAs or faults (its drills' runs hold those), and `drills` each drill's status."""
    drills: tuple[GameDayDrill, ...] = ()


@dataclass(frozen=True)
class RunQuery:
    """Which runs to read: every given condition must hold. Runs come back oldest first."""

    drill: str | None = None
    since: datetime | None = None
    before: datetime | None = None
    """Runs started strictly before this moment (a rolling baseline ends where the compared run starts)."""
    labels: Mapping[str, str] = field(default_factory=dict)
    status: str | None = None
    exclude: str | None = None
    """A run id to leave out (the compared run itself)."""
    last: int | None = None
    """Only the newest `last` runs that match."""
    kind: Kind = "drill"
    """Drills' runs (trends, baselines), or game days."""


def median(ordered: Sequence[float]) -> float:
    """Of one value or more, lowest first, as `statistics.median` (the mean of the middle two of an even count),
    without its import (fractions, decimal, random: 15 M instructions, about 3 ms of `drillctl history`) or its
    sort and checks (a trend chart takes 480 medians, each of values it sorted already)."""
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def present(values: Sequence[float | None]) -> list[float]:
    """The values measured, in order; a test for None in C first, as most figures have none."""
    return [v for v in values if v is not None] if None in values else cast(list[float], list(values))


@dataclass(frozen=True)
class Series:
    """One figure of a drill over the matching runs, oldest first."""

    subject: str
    """`sla <name>` or `fault <name>`, as `drillctl compare` names them."""
    metric: str
    """`measured` for an SLA; a fault's `time_to_recover` or `unavailability`."""
    unit: Unit
    values: tuple[float | None, ...]
    """One per run of its DrillSeries; None where that run did not measure it (a fault that never recovered, an
    SLA the drill did not have then)."""

    @cached_property
    def measured(self) -> list[float]:
        return present(self.values)

    @cached_property
    def ordered(self) -> list[float]:
        """The values measured, lowest first: one sort gives the median, the lowest and the highest."""
        return sorted(self.measured)

    @property
    def last(self) -> float | None:
        return self.values[-1] if self.values else None

    @property
    def median(self) -> float | None:
        return median(self.ordered) if self.ordered else None

    @property
    def low(self) -> float | None:
        return self.ordered[0] if self.ordered else None

    @property
    def high(self) -> float | None:
        return self.ordered[-1] if self.ordered else None


@dataclass(frozen=True)
class DrillSeries:
    """A drill's matching runs and their figures as columns, oldest first: what trends are drawn from.

    Columns rather than a `RunRecord` per run: `drillctl history` reads 10,000 runs within its time budget
    because no object is built per run and figure (bench/history.py).
    """

    drill: str
    run_ids: tuple[str, ...]
    started_at: tuple[datetime, ...]
    statuses: tuple[str, ...]
    verdicts: tuple[str, ...]
    figures: tuple[Series, ...]
    """Each SLA's measured value, then each fault's TREND_FAULT_METRICS, in the order the drill declares them."""
    labels: tuple[Mapping[str, str], ...] = ()
    """Each run's `--label` pairs when asked for (`series(query, with_labels=True)`), else empty: reading them
    is a dictionary per run, which the text view does not need."""
