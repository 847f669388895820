"""Pure analysis: timeline and SLAs in, verdicts out. No clock, no I/O.

Health is step-wise: a probe is as healthy as its latest sample says, from that sample's
scheduled time until its next one. The resolution of every window is therefore one interval.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from orchestrator.model.spec import (
    DrillSpec,
    ErrorRateSla,
    LatencySla,
    RecoveryWindowSla,
    SlaSpec,
)
from orchestrator.model.timeline import FaultMark, Sample, Timeline
from orchestrator.model.verdict import ProbeStats, RecoveryWindow, SlaVerdict

PHASES = ("baseline", "fault", "recovery")
DEFAULT_STABLE_FOR = 1.0


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile: always a value that was really observed."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


def probe_stats(timeline: Timeline) -> list[ProbeStats]:
    """Per probe and phase. Failed samples count with their latency (a timeout took that long)."""
    out: list[ProbeStats] = []
    for phase in PHASES:
        for probe in timeline.probes:
            chosen = [s for s in timeline.samples if s.probe == probe and s.phase == phase]
            if not chosen:
                continue
            lat = sorted(s.latency for s in chosen if s.latency is not None)
            out.append(
                ProbeStats(
                    probe=probe,
                    phase=phase,
                    samples=len(chosen),
                    failures=sum(not s.ok for s in chosen),
                    p50=percentile(lat, 50),
                    p90=percentile(lat, 90),
                    p99=percentile(lat, 99),
                    max=lat[-1] if lat else None,
                )
            )
    return out


def _by_probe(samples: Iterable[Sample], probes: Iterable[str]) -> dict[str, list[Sample]]:
    wanted = {p: [] for p in probes}  # type: dict[str, list[Sample]]
    for s in samples:
        if s.probe in wanted:
            wanted[s.probe].append(s)
    for series in wanted.values():
        series.sort(key=lambda s: s.at)
    return wanted


def _health_changes(series: dict[str, list[Sample]]) -> list[tuple[float, bool]]:
    """Moments where 'every probe healthy' may change, with the combined state from then on."""
    events = sorted((s.at, s.probe, s.ok) for samples in series.values() for s in samples)
    state: dict[str, bool] = {}
    changes: list[tuple[float, bool]] = []
    i = 0
    while i < len(events):
        at = events[i][0]
        while i < len(events) and events[i][0] == at:
            state[events[i][1]] = events[i][2]
            i += 1
        healthy = len(state) == len(series) and all(state.values())
        if not changes or changes[-1][1] != healthy:
            changes.append((at, healthy))
    return changes


def recovered_at(timeline: Timeline, probes: Sequence[str], after: float, stable_for: float) -> float | None:
    """First moment >= `after` from which every probe passed for `stable_for`, if observed."""
    series = _by_probe(timeline.samples, probes)
    if not series or any(not s for s in series.values()):
        return None
    observed_until = min(samples[-1].at for samples in series.values())
    changes = _health_changes(series)
    for k, (at, healthy) in enumerate(changes):
        if not healthy:
            continue
        until = changes[k + 1][0] if k + 1 < len(changes) else None
        if until is not None and until <= after:
            continue
        begin = max(at, after)
        end = until if until is not None else observed_until
        if end - begin >= stable_for - 1e-9:
            return begin
    return None


def impact_at(timeline: Timeline, probes: Sequence[str], start: float, end: float) -> float | None:
    """First failing sample scheduled in [start, end]."""
    failing = [s.at for s in timeline.samples if s.probe in probes and not s.ok and start <= s.at <= end]
    return min(failing, default=None)


def unavailability(timeline: Timeline, probes: Sequence[str], start: float, end: float) -> float:
    """Time in [start, end] during which at least one probe was failing."""
    series = _by_probe(timeline.samples, probes)
    total = 0.0
    changes = _health_changes(series)
    for k, (at, healthy) in enumerate(changes):
        if healthy:
            continue
        until = changes[k + 1][0] if k + 1 < len(changes) else end
        lo, hi = max(at, start), min(until, end)
        if hi > lo:
            total += hi - lo
    return total


def recovery_windows(spec: DrillSpec, timeline: Timeline) -> list[RecoveryWindow]:
    probes = list(timeline.probes)
    out: list[RecoveryWindow] = []
    for mark in timeline.faults:
        if mark.injected_at is None:
            continue
        end = mark.end if mark.end is not None else timeline.end
        stable = _stable_for_fault(spec, mark.name)
        impact = impact_at(timeline, probes, mark.injected_at, end)
        recovered = recovered_at(timeline, probes, end, stable)
        out.append(
            RecoveryWindow(
                fault=mark.name,
                time_to_impact=None if impact is None else impact - mark.injected_at,
                time_to_recover=None if recovered is None else recovered - end,
                unavailability=unavailability(
                    timeline, probes, mark.injected_at, recovered if recovered is not None else timeline.end
                ),
                resolution=timeline.interval,
            )
        )
    return out


def _stable_for_fault(spec: DrillSpec, fault: str) -> float:
    for sla in spec.spec.slas:
        if isinstance(sla, RecoveryWindowSla) and sla.fault in (None, fault):
            return sla.stable_for
    return DEFAULT_STABLE_FOR


def reference_fault(sla: RecoveryWindowSla, timeline: Timeline) -> FaultMark | None:
    """The fault an SLA is measured from: named, else the first to start or the last to end."""
    injected = [f for f in timeline.faults if f.injected_at is not None]
    if sla.fault is not None:
        return next((f for f in injected if f.name == sla.fault), None)
    if not injected:
        return None
    if sla.measured_from == "fault_start":
        return min(injected, key=lambda f: f.injected_at or 0.0)
    return max(injected, key=lambda f: f.end if f.end is not None else math.inf)


def _reference_time(sla: RecoveryWindowSla, mark: FaultMark) -> float | None:
    return mark.injected_at if sla.measured_from == "fault_start" else mark.end


def judge(spec: DrillSpec, timeline: Timeline) -> list[SlaVerdict]:
    stats = probe_stats(timeline)
    return [_judge_one(sla, spec, timeline, stats) for sla in spec.spec.slas]


def _judge_one(sla: SlaSpec, spec: DrillSpec, timeline: Timeline, stats: list[ProbeStats]) -> SlaVerdict:
    if isinstance(sla, RecoveryWindowSla):
        return _judge_recovery(sla, timeline)
    if isinstance(sla, ErrorRateSla):
        return _judge_error_rate(sla, timeline)
    return _judge_latency(sla, stats)


def measure_recovery(sla: RecoveryWindowSla, timeline: Timeline) -> tuple[FaultMark | None, float | None, float | None]:
    """The reference fault, the reference time, and the moment of recovery (each None if not there).

    From `fault_start`, recovery only counts once the fault has hit: health before a late impact
    is not a recovery. With no impact while the fault was active, the window is zero.
    """
    probes = sla.probes or list(timeline.probes)
    mark = reference_fault(sla, timeline)
    ref = None if mark is None else _reference_time(sla, mark)
    if mark is None or ref is None:
        return mark, None, None
    after = ref
    if sla.measured_from == "fault_start":
        active_until = mark.end if mark.end is not None else timeline.end
        after = impact_at(timeline, probes, ref, active_until) or ref
    return mark, ref, recovered_at(timeline, probes, after, sla.stable_for)


def _judge_recovery(sla: RecoveryWindowSla, timeline: Timeline) -> SlaVerdict:
    probes = sla.probes or list(timeline.probes)
    mark, ref, at = measure_recovery(sla, timeline)
    if mark is None or ref is None:
        return _verdict(sla, None, sla.max, "s", "the fault it is measured from never ran to that point")
    if at is None:
        return _verdict(
            sla,
            None,
            sla.max,
            "s",
            f"no recovery stable for {sla.stable_for:g}s observed after {sla.measured_from} of {mark.name}",
        )
    window = at - ref
    return _verdict(
        sla,
        window,
        sla.max,
        "s",
        f"{', '.join(probes)} stable from {window:.3f}s after {sla.measured_from} of {mark.name} "
        f"(resolution {timeline.interval * 1000:g}ms)",
    )


def _judge_error_rate(sla: ErrorRateSla, timeline: Timeline) -> SlaVerdict:
    probes = set(sla.probes or timeline.probes)
    chosen = [s for s in timeline.samples if s.probe in probes and s.phase == sla.phase]
    if not chosen:
        return _verdict(sla, None, sla.max, "ratio", f"no samples in phase {sla.phase}")
    failed = sum(not s.ok for s in chosen)
    return _verdict(
        sla, failed / len(chosen), sla.max, "ratio", f"{failed} of {len(chosen)} samples failed in {sla.phase}"
    )


def _judge_latency(sla: LatencySla, stats: list[ProbeStats]) -> SlaVerdict:
    row = next((s for s in stats if s.probe == sla.probe and s.phase == sla.phase), None)
    thresholds = sla.thresholds()
    if row is None:
        key, limit = next(iter(thresholds.items()))
        return _verdict(sla, None, limit, "s", f"no samples of {sla.probe} in phase {sla.phase}")
    worst: SlaVerdict | None = None
    for key, limit in thresholds.items():
        value = getattr(row, key)
        detail = f"{key} of {sla.probe} in {sla.phase} over {row.samples} samples"
        verdict = _verdict(sla, value, limit, "s", detail)
        if worst is None or _rank(verdict) < _rank(worst):
            worst = verdict
    assert worst is not None  # thresholds is never empty: loading refuses such an SLA
    return worst


def _rank(v: SlaVerdict) -> float:
    """Smallest relative margin first, so the verdict shown is the one closest to (or past) its limit."""
    if v.measured is None:
        return -math.inf
    return (v.threshold - v.measured) / v.threshold


def _verdict(sla: SlaSpec, measured: float | None, threshold: float, unit: str, detail: str) -> SlaVerdict:
    passed = measured is not None and measured <= threshold
    return SlaVerdict(
        name=sla.name,
        type=sla.type,
        passed=passed,
        measured=measured,
        threshold=threshold,
        unit="s" if unit == "s" else "ratio",
        detail=detail,
        runbook=sla.runbook,
    )


def recovery_decided(spec: DrillSpec, timeline: Timeline, after: float) -> bool:
    """Whether the recovery phase has seen enough: each recovery window measured.

    With no recovery-window SLA, the drill waits until every probe has been healthy for
    DEFAULT_STABLE_FOR after `after` (the last revert).
    """
    windows = [s for s in spec.spec.slas if isinstance(s, RecoveryWindowSla)]
    if not windows:
        return recovered_at(timeline, timeline.probes, after, DEFAULT_STABLE_FOR) is not None
    for sla in windows:
        _, ref, at = measure_recovery(sla, timeline)
        if ref is not None and at is None:
            return False
    return True
