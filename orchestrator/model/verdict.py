"""Verdicts: what the analysis concludes from a timeline. Plain data, rendered by reporting."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from orchestrator.model.units import Unit  # at run time: json_report reads the annotations

Status = Literal["passed", "failed", "aborted", "baseline_failed", "error"]

Recovery = Literal["before_revert", "after_revert", "not_recovered", "not_impacted"]
"""How a fault's impact ended: by itself while the fault held, only after the revert, not while
observed, or there was no impact to recover from."""

DrillOutcome = Literal["PASS", "FAIL", "ABORTED", "ERROR"]


@dataclass(frozen=True)
class ProbeStats:
    """One probe over one stretch of the run: a phase, or (with `fault`) one fault's window.

    Latencies are in seconds and percentiles are exact nearest-rank values over every sample that
    completed. `lag_*` and `jitter` describe the sampler itself: how late samples started, and how
    much that lateness changed from one sample to the next (p99 of the change).
    """

    probe: str
    phase: str
    samples: int
    failures: int
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None
    p999: float | None = None
    fault: str | None = None
    lag_p50: float | None = None
    lag_p99: float | None = None
    lag_max: float | None = None
    jitter: float | None = None

    @property
    def error_rate(self) -> float:
        return self.failures / self.samples if self.samples else 0.0

    @property
    def availability(self) -> float:
        """Share of samples that passed. Samples are evenly spaced (open loop), so this is time-weighted too."""
        return 1.0 - self.error_rate if self.samples else 0.0

    @property
    def window(self) -> str:
        """What this row covers, as a reader says it."""
        return self.phase if self.fault is None else f"fault {self.fault}"


@dataclass(frozen=True)
class RecoveryWindow:
    """How one fault hit the selected probes. None means it did not happen while observed.

    `resolution` is how precisely the window's edges are known: the largest spacing between the
    real starts of the samples around it (a late start widens it). `sampler_lag` is the sampler's
    worst lag there, for the reader: it is already inside that spacing.
    """

    fault: str
    time_to_impact: float | None
    time_to_recover: float | None
    unavailability: float
    resolution: float
    longest_outage: float = 0.0
    recovered_at: float | None = None
    """Start of the first stable window after the impact (seconds since t0)."""
    recovery: Recovery = "not_impacted"
    failing_at_injection: bool = False
    """The probes already failed when the fault went in: the impact may not be the fault's."""
    sampler_lag: float = 0.0


class JudgedSla(Protocol):
    """What a verdict takes from an SLA of any kind."""

    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def runbook(self) -> str | None: ...


@dataclass(frozen=True)
class SlaVerdict:
    name: str
    type: str
    passed: bool
    measured: float | None
    threshold: float
    unit: Unit
    detail: str
    runbook: str | None
    resolution: float | None = None
    """The measurement's precision in its own unit (None: exact, as a latency percentile is)."""
    probes: tuple[str, ...] = ()
    phase: str | None = None
    window_from: float | None = None
    """Recovery windows only: the moment measured from, and `window_to` the recovery (seconds since t0)."""
    window_to: float | None = None
    reference: str | None = None
    """Recovery windows only: what `window_from` is, e.g. `fault_end of db-outage`."""

    @classmethod
    def at_most(
        cls,
        sla: JudgedSla,
        measured: float | None,
        threshold: float,
        unit: Unit,
        detail: str,
        *,
        resolution: float | None = None,
        phase: str | None = None,
        reference: str | None = None,
    ) -> SlaVerdict:
        """The verdict of an SLA met when its figure is at most `threshold`; a figure never measured fails it."""
        return cls(
            name=sla.name,
            type=sla.type,
            passed=measured is not None and measured <= threshold,
            measured=measured,
            threshold=threshold,
            unit=unit,
            detail=detail,
            runbook=sla.runbook,
            resolution=resolution,
            phase=phase,
            reference=reference,
        )

    @property
    def margin(self) -> float | None:
        """Headroom left (negative when breached)."""
        return None if self.measured is None else self.threshold - self.measured

    @property
    def marginal(self) -> bool:
        """The margin is within the resolution: one sample more or less could flip the verdict."""
        margin = self.margin
        return margin is not None and self.resolution is not None and abs(margin) <= self.resolution

    @property
    def result(self) -> str:
        """PASS or FAIL, qualified when the margin is inside the resolution."""
        word = "PASS" if self.passed else "FAIL"
        return f"{word} (within resolution)" if self.marginal else word


@dataclass(frozen=True)
class DrillVerdict:
    """The drill's one-word answer, with the SLAs behind it."""

    outcome: DrillOutcome
    failed: tuple[str, ...] = ()
    marginal: tuple[str, ...] = ()
