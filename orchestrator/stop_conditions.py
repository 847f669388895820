"""Stop conditions (like AWS FIS stop conditions), judged purely from samples as they land.

No I/O and no clock: the engine hands each landed sample and the recent samples of its probe
(`Recent`), and learns whether a condition tripped, when, and on what evidence. `alert_firing`
conditions are judged the same way from each poll of Prometheus's alerts (`check_alert`).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from orchestrator.model.alerts import AlertChange
from orchestrator.model.spec import AlertFiringStop, ErrorRateStop, ProbeFailingStop, SampleStop, StopConditionSpec
from orchestrator.model.timeline import Sample

EVIDENCE_ERRORS = 3
"""Distinct error messages quoted as evidence."""


@dataclass(frozen=True)
class Stop:
    """What stopped a drill before its end: a stop condition, `drillctl abort`, or a signal."""

    kind: str
    """stop_condition, abort or signal."""
    name: str
    """The condition's name, `drillctl abort` or `drillctl freeze`, or the signal's name."""
    at: float | None
    """Seconds since t0 (the tripping sample's scheduled time, or when the request arrived)."""
    evidence: str

    def reason(self) -> str:
        at = "" if self.at is None else f" at {self.at:.3f}s"
        if self.kind == "stop_condition":
            return f"stop condition {self.name} tripped{at}: {self.evidence}"
        if self.kind == "abort":
            return f"aborted by {self.name}{at}: {self.evidence}"
        return f"received {self.name}{at}"

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "name": self.name, "at": self.at, "evidence": self.evidence}


def of_probe(conditions: Iterable[StopConditionSpec], probe: str) -> list[SampleStop]:
    """The conditions judged from `probe`'s samples."""
    return [c for c in conditions if not isinstance(c, AlertFiringStop) and c.probe == probe]


def lookback(conditions: Iterable[SampleStop], interval: float) -> float:
    """How far before a landed sample the conditions look: the longest window, or `consecutive` samples."""
    return max(
        (c.window if isinstance(c, ErrorRateStop) else c.consecutive * interval for c in conditions), default=0.0
    )


class Recent:
    """One probe's samples ordered by scheduled time, kept only as far back as its stop conditions look.

    Why: a drill of hours would otherwise keep every sample of each probe with a condition. `keep`
    is the conditions' lookback plus how late a sample may land (open-loop samples land out of
    order, up to the probe's timeout after their time); one sample before that edge stays, so an
    error-rate window still knows it is covered.
    """

    def __init__(self, keep: float) -> None:
        self.keep = keep
        self.samples: list[Sample] = []
        self.newest = -math.inf

    def add(self, sample: Sample) -> None:
        bisect.insort(self.samples, sample, key=lambda s: s.at)
        self.newest = max(self.newest, sample.at)
        edge = bisect.bisect_right(self.samples, self.newest - self.keep, key=lambda s: s.at) - 1
        if edge > 0:
            del self.samples[:edge]


def check(condition: SampleStop, samples: Sequence[Sample], landed: Sample) -> Stop | None:
    """Whether `condition` trips now that `landed` is in `samples` (that probe's samples, ordered by `at`).

    Samples outside the condition's phases do not count.
    """
    if landed.probe != condition.probe or landed.phase not in condition.phases:
        return None
    counted = [s for s in samples if s.phase in condition.phases]
    if isinstance(condition, ErrorRateStop):
        return _error_rate(condition, counted, landed)
    return _failing(condition, counted, landed)


def _error_rate(condition: ErrorRateStop, samples: Sequence[Sample], landed: Sample) -> Stop | None:
    """The window (landed.at - window, landed.at]; judged once samples cover a whole window."""
    if not samples or samples[0].at > landed.at - condition.window + 1e-9:
        return None
    start = landed.at - condition.window
    lo = bisect.bisect_right(samples, start + 1e-9, key=lambda s: s.at)
    hi = bisect.bisect_right(samples, landed.at + 1e-9, key=lambda s: s.at)
    window = samples[lo:hi]
    failed = [s for s in window if not s.ok]
    if not window or len(failed) / len(window) <= condition.max:
        return None
    evidence = (
        f"{len(failed)}/{len(window)} samples of {condition.probe} failed between {window[0].at:.3f}s and "
        f"{window[-1].at:.3f}s ({len(failed) / len(window):.0%} > {condition.max:.0%}){_errors(failed)}"
    )
    return Stop("stop_condition", condition.name, landed.at, evidence)


def _failing(condition: ProbeFailingStop, samples: Sequence[Sample], landed: Sample) -> Stop | None:
    """The run of failed samples that holds `landed`, counted among the samples landed so far."""
    if landed.ok:
        return None
    index = bisect.bisect_left(samples, landed.at, key=lambda s: s.at)
    first = index
    while first > 0 and not samples[first - 1].ok:
        first -= 1
    last = index
    while last + 1 < len(samples) and not samples[last + 1].ok:
        last += 1
    run = samples[first : last + 1]
    if len(run) < condition.consecutive:
        return None
    evidence = (
        f"{len(run)} failed samples of {condition.probe} in a row, from {run[0].at:.3f}s to {run[-1].at:.3f}s "
        f"(limit {condition.consecutive}){_errors(run)}"
    )
    return Stop("stop_condition", condition.name, landed.at, evidence)


def _errors(failed: Sequence[Sample]) -> str:
    seen = list(dict.fromkeys(s.error or "failed" for s in failed))[:EVIDENCE_ERRORS]
    return "; errors: " + " | ".join(seen) if seen else ""


def check_alert(condition: AlertFiringStop, phase: str, state: AlertChange) -> Stop | None:
    """Whether `condition` trips on the latest state of its alert, seen during `phase`."""
    if state.state != "firing" or phase not in condition.phases:
        return None
    labels = ", ".join(f'{k}="{v}"' for k, v in sorted(state.labels.items()))
    since = "" if state.since is None else f" (it began firing after {state.since:.3f}s)"
    return Stop("stop_condition", condition.name, state.at, f"alert {state.alert} is firing{since}: {{{labels}}}")
