"""Pure analysis: timeline and SLAs in, verdicts out. No clock, no I/O.

Health is step-wise: a probe is as healthy as its latest sample says, from that sample's
scheduled time until its next one. A window's edges are therefore known to within the spacing
of the samples around them plus how late the sampler started them: its resolution.
Percentiles are exact (nearest rank over every sample), not estimated from a histogram.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from itertools import pairwise

from orchestrator.model.spec import (
    DrillSpec,
    ErrorRateSla,
    LatencySla,
    RecoveryWindowSla,
    SlaSpec,
)
from orchestrator.model.timeline import FaultMark, Sample, Timeline
from orchestrator.model.verdict import DrillVerdict, ProbeStats, Recovery, RecoveryWindow, SlaVerdict

PHASES = ("baseline", "fault", "recovery")
DEFAULT_STABLE_FOR = 1.0


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile: always a value that was really observed."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values) - 1e-9))
    return sorted_values[rank - 1]


def stats_of(probe: str, phase: str, chosen: Sequence[Sample], fault: str | None = None) -> ProbeStats:
    """Failed samples count with their latency (a timeout took that long)."""
    lat = sorted(s.latency for s in chosen if s.latency is not None)
    ordered = sorted(chosen, key=lambda s: s.at)
    lags = [s.lag or 0.0 for s in ordered]
    steps = sorted(abs(b - a) for a, b in pairwise(lags))
    sorted_lags = sorted(lags)
    return ProbeStats(
        probe=probe,
        phase=phase,
        samples=len(chosen),
        failures=sum(not s.ok for s in chosen),
        p50=percentile(lat, 50),
        p90=percentile(lat, 90),
        p99=percentile(lat, 99),
        max=lat[-1] if lat else None,
        p999=percentile(lat, 99.9),
        fault=fault,
        lag_p50=percentile(sorted_lags, 50),
        lag_p99=percentile(sorted_lags, 99),
        lag_max=sorted_lags[-1] if sorted_lags else None,
        jitter=percentile(steps, 99),
    )


def probe_stats(timeline: Timeline) -> list[ProbeStats]:
    """Per probe and phase, then per probe over each injected fault's window (injection to its end)."""
    out: list[ProbeStats] = []
    for phase in PHASES:
        for probe in timeline.probes:
            chosen = [s for s in timeline.samples if s.probe == probe and s.phase == phase]
            if chosen:
                out.append(stats_of(probe, phase, chosen))
    for mark in timeline.faults:
        if mark.injected_at is None:
            continue
        start, end = mark.injected_at, mark.end if mark.end is not None else timeline.end
        for probe in timeline.probes:
            chosen = [s for s in timeline.samples if s.probe == probe and start <= s.at < end]
            if chosen:
                out.append(stats_of(probe, "fault", chosen, fault=mark.name))
    return out


def resolution(timeline: Timeline, probes: Iterable[str], start: float, end: float) -> tuple[float, float]:
    """(resolution, sampler lag) of a window [start, end]: how precisely its edges are known.

    The largest spacing between consecutive samples of any selected probe around the window (at
    least one interval; a gap in sampling widens it), plus the largest lag of those samples.
    """
    gap, lag = timeline.interval, 0.0
    for series in _by_probe(timeline.samples, probes).values():
        for a, b in pairwise(series):
            if b.at >= start and a.at <= end:
                gap = max(gap, round(b.at - a.at, 9))  # to the nanosecond: float noise is no gap
        for s in series:
            if start - timeline.interval <= s.at <= end + timeline.interval:
                lag = max(lag, s.lag or 0.0)
    return gap + lag, lag


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


def outages(timeline: Timeline, probes: Sequence[str], start: float, end: float) -> list[float]:
    """Lengths of the stretches in [start, end] during which at least one probe was failing."""
    series = _by_probe(timeline.samples, probes)
    out: list[float] = []
    changes = _health_changes(series)
    for k, (at, healthy) in enumerate(changes):
        if healthy:
            continue
        until = changes[k + 1][0] if k + 1 < len(changes) else end
        lo, hi = max(at, start), min(until, end)
        if hi > lo:
            out.append(hi - lo)
    return out


def unavailability(timeline: Timeline, probes: Sequence[str], start: float, end: float) -> float:
    """Time in [start, end] during which at least one probe was failing."""
    return sum(outages(timeline, probes, start, end))


def failing_at(timeline: Timeline, probes: Sequence[str], at: float) -> bool:
    """Whether some probe's latest sample before `at` had failed."""
    for series in _by_probe(timeline.samples, probes).values():
        before = [s for s in series if s.at < at]
        if before and not before[-1].ok:
            return True
    return False


def recovery_windows(spec: DrillSpec, timeline: Timeline) -> list[RecoveryWindow]:
    """Per injected fault, over every probe: impact, recovery, unavailability, longest outage."""
    probes = list(timeline.probes)
    out: list[RecoveryWindow] = []
    for mark in timeline.faults:
        if mark.injected_at is None:
            continue
        end = mark.end if mark.end is not None else timeline.end
        stable = _stable_for_fault(spec, mark.name)
        impact = impact_at(timeline, probes, mark.injected_at, end)
        after_end = recovered_at(timeline, probes, end, stable)
        first = None if impact is None else recovered_at(timeline, probes, impact, stable)
        recovery: Recovery
        if impact is None:
            recovery = "not_impacted"
        elif first is None:
            recovery = "not_recovered"
        else:
            recovery = "before_revert" if first < end else "after_revert"
        until = after_end if after_end is not None else timeline.end
        lost = outages(timeline, probes, mark.injected_at, until)
        res, lag = resolution(timeline, probes, mark.injected_at, until)
        out.append(
            RecoveryWindow(
                fault=mark.name,
                time_to_impact=None if impact is None else impact - mark.injected_at,
                time_to_recover=None if after_end is None else after_end - end,
                unavailability=sum(lost),
                resolution=res,
                longest_outage=max(lost, default=0.0),
                recovered_at=first,
                recovery=recovery,
                failing_at_injection=failing_at(timeline, probes, mark.injected_at),
                sampler_lag=lag,
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
        return _verdict(sla, None, sla.max, "s", "the fault it is measured from never ran to that point", probes)
    reference = f"{sla.measured_from} of {mark.name}"
    if at is None:
        res, _ = resolution(timeline, probes, ref, timeline.end)
        return _verdict(
            sla,
            None,
            sla.max,
            "s",
            f"no recovery stable for {sla.stable_for:g}s observed after {reference}",
            probes,
            resolution=res,
            window_from=ref,
            reference=reference,
        )
    window = at - ref
    res, lag = resolution(timeline, probes, ref, at + sla.stable_for)
    return _verdict(
        sla,
        window,
        sla.max,
        "s",
        f"{', '.join(probes)} stable from {window:.3f}s after {reference} "
        f"(resolution {res * 1000:.3g}ms: interval {timeline.interval * 1000:g}ms, sampler lag {lag * 1000:.3g}ms)",
        probes,
        resolution=res,
        window_from=ref,
        window_to=at,
        reference=reference,
    )


def _judge_error_rate(sla: ErrorRateSla, timeline: Timeline) -> SlaVerdict:
    """The resolution of a rate over n samples is one sample: 1/n."""
    probes = sla.probes or list(timeline.probes)
    chosen = [s for s in timeline.samples if s.probe in set(probes) and s.phase == sla.phase]
    if not chosen:
        return _verdict(sla, None, sla.max, "ratio", f"no samples in phase {sla.phase}", probes, phase=sla.phase)
    failed = sum(not s.ok for s in chosen)
    return _verdict(
        sla,
        failed / len(chosen),
        sla.max,
        "ratio",
        f"{failed} of {len(chosen)} samples failed in {sla.phase}",
        probes,
        resolution=1 / len(chosen),
        phase=sla.phase,
    )


def _judge_latency(sla: LatencySla, stats: list[ProbeStats]) -> SlaVerdict:
    """Nearest-rank percentiles are observed values: exact, so no resolution."""
    row = next((s for s in stats if s.probe == sla.probe and s.phase == sla.phase and s.fault is None), None)
    thresholds = sla.thresholds()
    probes = [sla.probe]
    if row is None:
        key, limit = next(iter(thresholds.items()))
        return _verdict(
            sla, None, limit, "s", f"no samples of {sla.probe} in phase {sla.phase}", probes, phase=sla.phase
        )
    worst: SlaVerdict | None = None
    for key, limit in thresholds.items():
        value = getattr(row, key)
        detail = f"{key} of {sla.probe} in {sla.phase} over {row.samples} samples (exact, nearest rank)"
        verdict = _verdict(sla, value, limit, "s", detail, probes, phase=sla.phase)
        if worst is None or _rank(verdict) < _rank(worst):
            worst = verdict
    assert worst is not None  # thresholds is never empty: loading refuses such an SLA
    return worst


def _rank(v: SlaVerdict) -> float:
    """Smallest relative margin first, so the verdict shown is the one closest to (or past) its limit."""
    if v.measured is None:
        return -math.inf
    return (v.threshold - v.measured) / v.threshold


def _verdict(
    sla: SlaSpec,
    measured: float | None,
    threshold: float,
    unit: str,
    detail: str,
    probes: Sequence[str],
    *,
    resolution: float | None = None,
    phase: str | None = None,
    window_from: float | None = None,
    window_to: float | None = None,
    reference: str | None = None,
) -> SlaVerdict:
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
        resolution=resolution,
        probes=tuple(probes),
        phase=phase,
        window_from=window_from,
        window_to=window_to,
        reference=reference,
    )


def drill_verdict(status: str, verdicts: Sequence[SlaVerdict]) -> DrillVerdict:
    """PASS or FAIL for a run that completed; ABORTED when it was stopped; ERROR when it could not judge.

    A baseline that did not hold is ERROR: the system was unhealthy before any fault, so the drill
    says nothing about recovery.
    """
    marginal = tuple(v.name for v in verdicts if v.marginal)
    if status == "completed":
        failed = tuple(v.name for v in verdicts if not v.passed)
        return DrillVerdict("FAIL" if failed else "PASS", failed, marginal)
    if status == "aborted":
        return DrillVerdict("ABORTED", (), marginal)
    return DrillVerdict("ERROR", (), marginal)


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
