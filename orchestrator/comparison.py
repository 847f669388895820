"""Pure comparison of two runs of the same drill: what got worse, by how much, and is it a regression.

Every compared figure is "lower is better" (recovery time, unavailability, latency, error rate).
A change is a regression when the new value is worse by more than the tolerance: the larger of a
relative share of the baseline value, an absolute floor (so that noise on tiny values is not a
regression) and the measurements' own resolution (a window known to ±100ms cannot regress by 50ms).
An SLA that passed and now fails is always a regression; so is a figure that was measured and now is
not (never recovered), and a run that completed before and now did not.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol, TypeVar

from orchestrator.model.units import Unit
from orchestrator.model.verdict import DrillVerdict, ProbeStats, RecoveryWindow, SlaVerdict

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


class Judged(Protocol):
    """What a comparison reads of a run; a reporting Report is one."""

    @property
    def verdict(self) -> DrillVerdict: ...

    @property
    def verdicts(self) -> list[SlaVerdict]: ...

    @property
    def windows(self) -> list[RecoveryWindow]: ...

    @property
    def stats(self) -> list[ProbeStats]: ...


@dataclass(frozen=True)
class Tolerance:
    relative: float = 0.2
    """Share of the baseline value a figure may grow by."""
    window: float = 0.1
    """Absolute floor for recovery windows and outages, in seconds."""
    latency: float = 0.010
    """Absolute floor for latency percentiles, in seconds."""
    rate: float = 0.01
    """Absolute floor for error rates (0.01: one percentage point)."""


@dataclass(frozen=True)
class Change:
    subject: str
    """`sla <name>`, `fault <name>` or `probe <name> <window>`."""
    metric: str
    unit: Unit
    baseline: float | None
    new: float | None
    allowed: float | None
    """How much worse the new value may be before it is a regression (None: not judged)."""
    regression: bool
    note: str = ""

    @property
    def delta(self) -> float | None:
        return None if self.baseline is None or self.new is None else self.new - self.baseline

    @property
    def relative(self) -> float | None:
        delta = self.delta
        return None if delta is None or not self.baseline else delta / self.baseline


@dataclass(frozen=True)
class Comparison:
    baseline: str
    new: str
    changes: list[Change]
    notes: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[Change]:
        return [c for c in self.changes if c.regression]

    @property
    def regressed(self) -> bool:
        return bool(self.regressions)


def _judge(
    subject: str,
    metric: str,
    unit: Unit,
    base: float | None,
    new: float | None,
    floor: float,
    tolerance: Tolerance,
    resolution: float = 0.0,
) -> Change:
    if base is None and new is None:
        return Change(subject, metric, unit, base, new, None, False, "not measured in either run")
    if base is None:
        return Change(subject, metric, unit, base, new, None, False, "measured now, not in the baseline")
    if new is None:
        return Change(subject, metric, unit, base, new, None, True, "measured in the baseline, not now")
    allowed = max(floor, tolerance.relative * abs(base), resolution)
    return Change(subject, metric, unit, base, new, allowed, new - base > allowed + 1e-12)


def compare(baseline: Judged, new: Judged, tolerance: Tolerance | None = None) -> Comparison:
    t = tolerance or Tolerance()
    changes: list[Change] = []
    notes: list[str] = []
    before, after = baseline.verdict, new.verdict
    if before.outcome in ("PASS", "FAIL") and after.outcome not in ("PASS", "FAIL"):
        changes.append(
            Change("drill", "verdict", "ratio", None, None, None, True, f"{before.outcome} -> {after.outcome}")
        )
    changes += _slas(baseline.verdicts, new.verdicts, t, notes)
    changes += _faults(baseline.windows, new.windows, t, notes)
    changes += _probes(baseline.stats, new.stats, t)
    return Comparison(before.outcome, after.outcome, changes, notes)


def _pairs(base: Sequence[T], new: Sequence[T], key: Callable[[T], K]) -> tuple[list[tuple[T, T]], list[K], list[K]]:
    """Each baseline item with the new run's item of the same key; then the keys only the baseline has, and
    the keys only the new run has."""
    now = {key(n): n for n in new}
    pairs = [(b, now[key(b)]) for b in base if key(b) in now]
    before = {key(b) for b in base}
    return pairs, [key(b) for b in base if key(b) not in now], [k for k in now if k not in before]


def _slas(base: Sequence[SlaVerdict], new: Sequence[SlaVerdict], t: Tolerance, notes: list[str]) -> list[Change]:
    out: list[Change] = []
    pairs, gone, added = _pairs(base, new, lambda v: v.name)
    notes += [f"SLA {name} is not in the new run" for name in gone]
    for b, n in pairs:
        subject = f"sla {b.name}"
        if b.passed and not n.passed:
            out.append(Change(subject, "passed", b.unit, b.measured, n.measured, None, True, "PASS -> FAIL"))
            continue
        floor = t.rate if b.unit == "ratio" else t.latency if b.type == "latency" else t.window
        resolution = max(b.resolution or 0.0, n.resolution or 0.0)
        change = _judge(subject, "measured", b.unit, b.measured, n.measured, floor, t, resolution)
        note = "FAIL -> PASS" if n.passed and not b.passed else change.note
        out.append(replace(change, note=note))
    notes += [f"SLA {name} is new" for name in added]
    return out


def _faults(
    base: Sequence[RecoveryWindow], new: Sequence[RecoveryWindow], t: Tolerance, notes: list[str]
) -> list[Change]:
    out: list[Change] = []
    pairs, gone, _ = _pairs(base, new, lambda w: w.fault)
    notes += [f"fault {fault} was not injected in the new run" for fault in gone]
    for b, n in pairs:
        subject = f"fault {b.fault}"
        resolution = max(b.resolution, n.resolution)
        if b.recovery != "not_recovered" and n.recovery == "not_recovered":
            out.append(Change(subject, "recovery", "s", None, None, None, True, f"{b.recovery} -> not_recovered"))
        elif b.recovery == "before_revert" and n.recovery == "after_revert":
            notes.append(f"fault {b.fault}: recovered before the revert in the baseline, only after it now")
        for metric in ("time_to_recover", "unavailability", "longest_outage"):
            base_value, new_value = getattr(b, metric), getattr(n, metric)
            out.append(_judge(subject, metric, "s", base_value, new_value, t.window, t, resolution))
        impact = Change(subject, "time_to_impact", "s", b.time_to_impact, n.time_to_impact, None, False, "not judged")
        out.append(impact)
    return out


def _probes(base: Sequence[ProbeStats], new: Sequence[ProbeStats], t: Tolerance) -> list[Change]:
    out: list[Change] = []
    pairs, _, _ = _pairs(base, new, lambda s: (s.probe, s.phase, s.fault))
    for b, n in pairs:
        if b.fault is not None:  # fault windows are judged through their fault above
            continue
        subject = f"probe {b.probe} {b.window}"
        out.append(_judge(subject, "error_rate", "ratio", b.error_rate, n.error_rate, t.rate, t))
        for metric in ("p50", "p90", "p99"):
            out.append(_judge(subject, metric, "s", getattr(b, metric), getattr(n, metric), t.latency, t))
    return out
