"""Verdicts: what the analysis concludes from a timeline. Plain data, rendered by reporting."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["passed", "failed", "aborted", "baseline_failed", "error"]


@dataclass(frozen=True)
class ProbeStats:
    """Error rate and latency percentiles of one probe in one phase (latencies in seconds)."""

    probe: str
    phase: str
    samples: int
    failures: int
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None

    @property
    def error_rate(self) -> float:
        return self.failures / self.samples if self.samples else 0.0


@dataclass(frozen=True)
class RecoveryWindow:
    """How one fault hit the selected probes. None means it did not happen while observed."""

    fault: str
    time_to_impact: float | None
    time_to_recover: float | None
    unavailability: float
    resolution: float


@dataclass(frozen=True)
class SlaVerdict:
    name: str
    type: str
    passed: bool
    measured: float | None
    threshold: float
    unit: Literal["s", "ratio"]
    detail: str
    runbook: str | None

    @property
    def margin(self) -> float | None:
        """Headroom left (negative when breached)."""
        return None if self.measured is None else self.threshold - self.measured
