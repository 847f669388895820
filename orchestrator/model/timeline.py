"""What happened during a run, on the monotonic clock (seconds since the run's t0)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Sample:
    """One observation. `at` is when it was scheduled (open loop), `lag` how late it really started."""

    probe: str
    at: float
    phase: str
    ok: bool
    latency: float | None
    lag: float | None
    error: str | None = None


@dataclass(frozen=True)
class PhaseMark:
    name: str
    start: float
    end: float


@dataclass(frozen=True)
class FaultMark:
    """A fault as it really ran: `injected_at`/`reverted_at` are measured, not scheduled."""

    name: str
    type: str
    params: Mapping[str, Any]
    scheduled_start: float
    scheduled_end: float
    injected_at: float | None
    reverted_at: float | None
    runbook: str | None = None
    error: str | None = None
    ended_at: float | None = None
    """When its duration ended. The revert, unless the fault stays in place to the end (restore: false)."""

    @property
    def end(self) -> float | None:
        """The `fault_end` that recovery is measured from."""
        return self.ended_at if self.ended_at is not None else self.reverted_at


@dataclass(frozen=True)
class Timeline:
    interval: float
    probes: tuple[str, ...]
    samples: tuple[Sample, ...]
    phases: tuple[PhaseMark, ...]
    faults: tuple[FaultMark, ...]
    end: float = field(default=0.0)

    def phase(self, name: str) -> PhaseMark | None:
        return next((p for p in self.phases if p.name == name), None)

    def fault(self, name: str) -> FaultMark | None:
        return next((f for f in self.faults if f.name == name), None)
