"""Pure analysis: timeline and SLAs in, verdicts out. No clock, no I/O.

Health is step-wise: a probe is as healthy as its latest sample says, from the moment that
sample really started (`Sample.started`: its scheduled time plus its lag) until the next one
started. Dating by the real start keeps the sampler's own delay out of every window: a sample
that started late saw the target late. A window's edges are therefore known to within the
spacing of the real starts around them (a late start widens it): its resolution.
Percentiles are exact (nearest rank over every sample), not estimated from a histogram.
"""

from __future__ import annotations

import bisect
import math
import operator
import weakref
from array import array
from collections.abc import Iterable, Sequence
from itertools import compress, filterfalse, islice, repeat

from orchestrator.alert_analysis import FaultMoments, alerts_decided, judge_alert_sla
from orchestrator.model.spec import (
    AlertSlaBase,
    DrillSpec,
    ErrorRateSla,
    LatencySla,
    RecoveryWindowSla,
    SlaSpec,
)
from orchestrator.model.timeline import FaultMark, Sample, SampleLog, Timeline
from orchestrator.model.verdict import DrillVerdict, ProbeStats, Recovery, RecoveryWindow, SlaVerdict
from orchestrator.workloads.judging import judge_workload

PHASES = ("baseline", "fault", "recovery")
DEFAULT_STABLE_FOR = 1.0


_LOG_INDEXES: weakref.WeakKeyDictionary[SampleLog, SampleIndex] = weakref.WeakKeyDictionary()
_INDEXES: dict[int, tuple[tuple[Sample, ...], SampleIndex]] = {}
KEPT_INDEXES = 8
"""Indexes of sample tuples (hand-made timelines; tuples cannot be weakly referenced) kept, newest last."""


def index_of(samples: Sequence[Sample]) -> SampleIndex:
    """The index of a timeline's samples, built once and brought up to date with what landed since."""
    if isinstance(samples, SampleLog):
        index = _LOG_INDEXES.get(samples)
        if index is None:
            index = _LOG_INDEXES[samples] = SampleIndex(samples)
    elif not isinstance(samples, tuple):  # a list may change in place: indexed afresh each time
        return SampleIndex(samples)
    else:
        held = _INDEXES.pop(id(samples), None)
        index = SampleIndex(samples) if held is None or held[0] is not samples else held[1]
        _INDEXES[id(samples)] = (samples, index)
        while len(_INDEXES) > KEPT_INDEXES:
            del _INDEXES[next(iter(_INDEXES))]
    index.update()
    return index


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile: always a value that was really observed."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values) - 1e-9))
    return sorted_values[rank - 1]


class _Probe:
    """One probe's samples in the order they started (ties in landing order): starts, pass flags, rows of the log.

    A real sampler starts samples in scheduled order, so this is that order too.
    """

    __slots__ = ("oks", "phases", "rows", "starts", "ties")

    def __init__(self) -> None:
        self.starts = array("d")
        self.oks = bytearray()
        self.rows = array("I")
        self.ties = False
        """Whether two samples share a start (hand-made timelines): health then groups them."""
        self.phases: bytes | None = None
        """Phase ids in the same order, made when stats first need them."""


class _Health:
    """The moments where 'every probe of a set healthy' may change, kept up to date as samples land."""

    __slots__ = ("changes", "ruled_out", "seen", "times")

    def __init__(self) -> None:
        self.seen = 0
        self.changes: list[tuple[float, bool]] = []
        self.times: list[float] = []
        self.ruled_out: dict[tuple[float, float], int] = {}
        """Per (after, stable_for): changes before this index are closed stretches too short to be a recovery."""


class SampleIndex:
    """Every sample of a timeline, per probe in scheduled order, for analysis that reads each sample once.

    Why: a `Sample` object costs about 170 bytes, so grouping a long run's samples into objects per
    question (by probe, by phase, for health) took gigabytes and minutes. The index keeps per probe
    three compact arrays (8 + 1 + 4 bytes a sample) beside the `SampleLog`'s own columns, answers
    windows by bisection, and memoizes combined health per probe set and statistics. A growing
    `SampleLog` (the engine's, while samples land) is indexed incrementally: only new rows are read,
    and health is recomputed only from the earliest newly landed sample on.
    """

    def __init__(self, samples: Sequence[Sample]) -> None:
        self._source: Sequence[Sample] | None = None
        if isinstance(samples, SampleLog):
            self.log = samples
        else:  # hand-made timelines: copied once into columns
            self._source, self.log = samples, SampleLog()
        self.n = 0
        self._probes: list[_Probe] = []
        self._ids: dict[str, int] = {}
        self._health: dict[frozenset[str], _Health] = {}
        self.stats: dict[tuple[str, str, float, float, str | None], ProbeStats | None] = {}
        """Memoized `ProbeStats` (None: no samples), cleared when samples land."""
        self.update()

    def update(self) -> None:
        """Read the samples that landed since the last update."""
        if self._source is not None and len(self._source) > len(self.log):
            for sample in self._source[len(self.log) :]:
                self.log.append(sample)
        log, start = self.log, self.n
        if len(log) == start:
            return
        while len(self._probes) < len(log.probes):
            self._ids[log.probes[len(self._probes)]] = len(self._probes)
            self._probes.append(_Probe())
        if start == 0:
            self._build()
        else:
            for i in range(start, len(log)):
                self._insert(i)
        self.n = len(log)
        self.stats.clear()
        for probe in self._probes:
            probe.phases = None

    def _build(self) -> None:
        """All rows at once: grouped in one pass, sorted only if they landed out of order."""
        log = self.log
        groups = [array("I") for _ in self._probes]
        appends = [g.append for g in groups]
        for i, p in enumerate(log.probe):
            appends[p](i)
        for probe, rows in zip(self._probes, groups, strict=True):
            starts = self._starts(rows)
            if not all(map(operator.le, starts, islice(starts, 1, None))):
                order = sorted(range(len(rows)), key=starts.__getitem__)  # stable: ties keep landing order
                rows, starts = array("I", map(rows.__getitem__, order)), array("d", map(starts.__getitem__, order))
            probe.rows, probe.starts = rows, starts
            probe.oks = bytearray(map(log.ok.__getitem__, rows))
            probe.ties = any(map(operator.eq, starts, islice(starts, 1, None)))

    def _starts(self, rows: Sequence[int]) -> array[float]:
        """When each of these rows really started: `at + lag`, `at` where the lag is unknown (NaN)."""
        at, lag = self.log.at, self.log.lag
        starts = array("d", map(operator.add, map(at.__getitem__, rows), map(lag.__getitem__, rows)))
        for k in compress(range(len(starts)), map(math.isnan, starts)):
            starts[k] = at[rows[k]]
        return starts

    def _insert(self, i: int) -> None:
        """One landed row, after any sample that started at the same moment (landing order)."""
        log = self.log
        probe, at = self._probes[log.probe[i]], log.started(i)
        starts = probe.starts
        pos = len(starts) if not starts or starts[-1] <= at else bisect.bisect_right(starts, at)
        if (pos > 0 and starts[pos - 1] == at) or (pos < len(starts) and starts[pos] == at):
            probe.ties = True
        starts.insert(pos, at)
        probe.oks.insert(pos, log.ok[i])
        probe.rows.insert(pos, i)

    def probe(self, name: str) -> _Probe | None:
        """A probe's samples, or None when it has none."""
        found = self._ids.get(name)
        return None if found is None or not self._probes[found].starts else self._probes[found]

    # --- health -----------------------------------------------------------------------------

    def health(self, probes: Iterable[str]) -> _Health:
        """Moments where 'every probe healthy' may change, with the combined state from then on.

        Per probe, the state at a moment is that of its latest sample started by then (any passing
        one counts when several started at once); the combined state is healthy once every probe
        has a sample and all of them pass.
        """
        names = frozenset(probes)
        entry = self._health.get(names)
        if entry is None:
            entry = self._health[names] = _Health()
            dirty = -math.inf
        elif entry.seen == self.n:
            return entry
        else:
            ids = {self._ids.get(p) for p in names}
            log = self.log
            news = [log.started(i) for i in range(entry.seen, self.n) if log.probe[i] in ids]
            dirty = min(news, default=math.inf)
        entry.seen = self.n
        if dirty < math.inf:
            self._recompute(entry, names, dirty)
        return entry

    def _recompute(self, entry: _Health, names: frozenset[str], dirty: float) -> None:
        """Changes before `dirty` stand (no sample before it changed); the rest is merged again."""
        keep = bisect.bisect_left(entry.times, dirty)
        del entry.changes[keep:], entry.times[keep:]
        entry.ruled_out = {key: min(k, max(keep - 1, 0)) for key, k in entry.ruled_out.items()}
        events: list[tuple[float, int, int]] = []
        states: dict[int, int] = {}
        for k, name in enumerate(names):
            probe = self.probe(name)
            if probe is None:
                continue
            lo = bisect.bisect_left(probe.starts, dirty)
            before: int | None = None
            if lo > 0:
                first = bisect.bisect_left(probe.starts, probe.starts[lo - 1])
                before = states[k] = int(probe.oks.find(1, first, lo) >= 0)
            events += ((at, k, state) for at, state in _changes(probe, lo, before))
        events.sort()
        failing = sum(1 for s in states.values() if not s)
        healthy = entry.changes[-1][1] if entry.changes else None
        i = 0
        while i < len(events):
            at = events[i][0]
            while i < len(events) and events[i][0] == at:
                _, k, state = events[i]
                old = states.get(k)
                failing += (not state) - (old is not None and not old)
                states[k] = state
                i += 1
            now = len(states) == len(names) and failing == 0
            if healthy is None or now != healthy:
                entry.changes.append((at, now))
                entry.times.append(at)
                healthy = now


def _changes(probe: _Probe, lo: int, state: int | None) -> list[tuple[float, int]]:
    """A probe's state changes from row `lo` on (and its first state if `state` is None: nothing before)."""
    starts, oks = probe.starts, probe.oks
    out: list[tuple[float, int]] = []
    if lo >= len(starts):
        return out
    if probe.ties:
        i = lo
        while i < len(starts):
            at, now = starts[i], 0
            while i < len(starts) and starts[i] == at:
                now |= oks[i]
                i += 1
            if now != state:
                out.append((at, now))
                state = now
        return out
    pos = lo
    if state is None:
        state = oks[lo]
        out.append((starts[lo], state))
        pos = lo + 1
    while (pos := oks.find(0 if state else 1, pos)) >= 0:
        state ^= 1
        out.append((starts[pos], state))
        pos += 1
    return out


def _stats(
    probe: str, phase: str, index: SampleIndex, rows: Sequence[int], fault: str | None = None
) -> ProbeStats | None:
    """Failed samples count with their latency (a timeout took that long). `rows` in the order they started."""
    if not rows:
        return None
    log = index.log
    lat = sorted(filterfalse(math.isnan, map(log.latency.__getitem__, rows)))
    lags = list(map(operator.add, map(log.lag.__getitem__, rows), repeat(0.0)))  # -0.0 + 0.0 is 0.0, as `or`
    if any(map(math.isnan, lags)):
        lags = [0.0 if math.isnan(x) else x for x in lags]
    steps = sorted(map(abs, map(operator.sub, islice(lags, 1, None), lags)))
    sorted_lags = sorted(lags)
    return ProbeStats(
        probe=probe,
        phase=phase,
        samples=len(rows),
        failures=bytes(map(log.ok.__getitem__, rows)).count(0),
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


def _phase_rows(index: SampleIndex, probe: _Probe, phase: str) -> Sequence[int]:
    """A probe's rows in one phase, in the order they started."""
    log = index.log
    if phase not in log.phases:
        return ()
    if probe.phases is None:
        probe.phases = bytes(map(log.phase.__getitem__, probe.rows))
    wanted = log.phases.index(phase)
    mask = probe.phases.translate(bytes(int(k == wanted) for k in range(256)))
    if mask.count(1) == len(mask):
        return probe.rows
    return list(compress(probe.rows, mask))


def probe_stats(timeline: Timeline) -> list[ProbeStats]:
    """Per probe and phase, then per probe over each injected fault's window (samples started from injection to end)."""
    index = index_of(timeline.samples)
    out: list[ProbeStats] = []
    for phase in PHASES:
        for name in timeline.probes:
            if (row := _memo_stats(index, name, phase, 0.0, 0.0, None)) is not None:
                out.append(row)
    for mark in timeline.faults:
        if mark.injected_at is None:
            continue
        start, end = mark.injected_at, mark.end if mark.end is not None else timeline.end
        for name in timeline.probes:
            if (row := _memo_stats(index, name, "fault", start, end, mark.name)) is not None:
                out.append(row)
    return out


def _memo_stats(
    index: SampleIndex, name: str, phase: str, start: float, end: float, fault: str | None
) -> ProbeStats | None:
    """A phase's stats (fault None) or a fault window's [start, end), each computed once per index state."""
    key = (name, phase, start, end, fault)
    if key in index.stats:
        return index.stats[key]
    probe = index.probe(name)
    row: ProbeStats | None = None
    if probe is not None:
        if fault is None:
            rows = _phase_rows(index, probe, phase)
        else:
            rows = probe.rows[bisect.bisect_left(probe.starts, start) : bisect.bisect_left(probe.starts, end)]
        row = _stats(name, phase, index, rows, fault)
    index.stats[key] = row
    return row


def resolution(timeline: Timeline, probes: Iterable[str], start: float, end: float) -> tuple[float, float]:
    """(resolution, sampler lag) of a window [start, end]: how precisely its edges are known.

    Health changes are dated when samples really started, so an edge lies between two consecutive
    starts: the resolution is the largest spacing between the starts of any selected probe's
    consecutive samples around the window (at least one interval; a gap in sampling or a late
    start widens it). The lag is the largest of those samples' lags: already inside the spacing,
    reported so a reader can tell a slow sampler from a gap.
    """
    index = index_of(timeline.samples)
    gap, lag = timeline.interval, 0.0
    for name in dict.fromkeys(probes):
        probe = index.probe(name)
        if probe is None:
            continue
        starts = probe.starts
        first = max(bisect.bisect_left(starts, start) - 1, 0)  # pairs (a, b): b started >= start, a <= end
        last = min(bisect.bisect_right(starts, end), len(starts) - 1)
        if first < last:
            widest = max(map(operator.sub, starts[first + 1 : last + 1], starts[first:last]))
            gap = max(gap, round(widest, 9))  # to the nanosecond: float noise is no gap
        lo = bisect.bisect_left(starts, start - timeline.interval)
        hi = bisect.bisect_right(starts, end + timeline.interval)
        lags = filterfalse(math.isnan, map(index.log.lag.__getitem__, probe.rows[lo:hi]))
        lag = max(lag, max(lags, default=0.0))
    return gap, lag


def recovered_at(timeline: Timeline, probes: Sequence[str], after: float, stable_for: float) -> float | None:
    """First moment >= `after` from which every probe passed for `stable_for`, if observed."""
    index = index_of(timeline.samples)
    series = [index.probe(p) for p in dict.fromkeys(probes)]
    if not series or any(s is None for s in series):
        return None
    observed_until = min(s.starts[-1] for s in series if s is not None)
    health = index.health(probes)
    changes, key = health.changes, (after, stable_for)
    first = max(bisect.bisect_right(health.times, after) - 1, health.ruled_out.get(key, 0), 0)
    for k in range(first, len(changes)):
        at, healthy = changes[k]
        if not healthy:
            continue
        until = changes[k + 1][0] if k + 1 < len(changes) else None
        if until is not None and until <= after:
            continue
        begin = max(at, after)
        end = until if until is not None else observed_until
        if end - begin >= stable_for - 1e-9:
            return begin
        if until is not None:
            health.ruled_out[key] = k + 1
    return None


def impact_at(timeline: Timeline, probes: Sequence[str], start: float, end: float) -> float | None:
    """When the first failing sample started in [start, end] started."""
    index = index_of(timeline.samples)
    first: float | None = None
    for name in dict.fromkeys(probes):
        probe = index.probe(name)
        if probe is None:
            continue
        lo, hi = bisect.bisect_left(probe.starts, start), bisect.bisect_right(probe.starts, end)
        if (at := probe.oks.find(0, lo, hi)) >= 0 and (first is None or probe.starts[at] < first):
            first = probe.starts[at]
    return first


def outages(timeline: Timeline, probes: Sequence[str], start: float, end: float) -> list[float]:
    """Lengths of the stretches in [start, end] during which at least one probe was failing."""
    health = index_of(timeline.samples).health(probes)
    changes = health.changes
    out: list[float] = []
    for k in range(max(bisect.bisect_right(health.times, start) - 1, 0), len(changes)):
        at, healthy = changes[k]
        if at >= end:
            break
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
    """Whether some probe's latest sample started before `at` had failed."""
    index = index_of(timeline.samples)
    for name in dict.fromkeys(probes):
        probe = index.probe(name)
        if probe is not None and (before := bisect.bisect_left(probe.starts, at)) > 0 and not probe.oks[before - 1]:
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
    """Each SLA against the timeline as it stands (`drillctl serve` judges a running drill's so far)."""
    slas = spec.spec.slas
    stats = probe_stats(timeline)
    moments = fault_moments(spec, timeline) if any(isinstance(s, AlertSlaBase) for s in slas) else []
    return [_judge_one(sla, spec, timeline, stats, moments) for sla in slas]


def _judge_one(
    sla: SlaSpec, spec: DrillSpec, timeline: Timeline, stats: list[ProbeStats], moments: list[FaultMoments]
) -> SlaVerdict:
    if isinstance(sla, RecoveryWindowSla):
        return _judge_recovery(sla, timeline)
    if isinstance(sla, ErrorRateSla):
        return _judge_error_rate(sla, timeline)
    if isinstance(sla, LatencySla):
        return _judge_latency(sla, stats)
    if isinstance(sla, AlertSlaBase):
        return judge_alert_sla(sla, timeline, moments)
    return judge_workload(sla, timeline.workload)


def fault_moments(spec: DrillSpec, timeline: Timeline) -> list[FaultMoments]:
    """Each injected fault's impact and recovery over every probe, with their resolutions: what alert SLAs
    are measured from (`alert_analysis`)."""
    probes = list(timeline.probes)
    marks = {f.name: f for f in timeline.faults}
    out = []
    for w in recovery_windows(spec, timeline):
        mark = marks[w.fault]
        assert mark.injected_at is not None  # recovery_windows covers injected faults only
        impact = None if w.time_to_impact is None else mark.injected_at + w.time_to_impact
        out.append(
            FaultMoments(
                fault=w.fault,
                injected_at=mark.injected_at,
                impact=impact,
                impact_resolution=0.0 if impact is None else resolution(timeline, probes, impact, impact)[0],
                recovered=w.recovered_at,
                recovered_resolution=0.0
                if w.recovered_at is None
                else resolution(timeline, probes, w.recovered_at, w.recovered_at)[0],
                runbook=mark.runbook,
            )
        )
    return out


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
        f"(resolution {res * 1000:.3g}ms: the widest spacing of sample starts, "
        f"interval {timeline.interval * 1000:g}ms, sampler lag up to {lag * 1000:.3g}ms)",
        probes,
        resolution=res,
        window_from=ref,
        window_to=at,
        reference=reference,
    )


def _judge_error_rate(sla: ErrorRateSla, timeline: Timeline) -> SlaVerdict:
    """The resolution of a rate over n samples is one sample: 1/n."""
    probes = sla.probes or list(timeline.probes)
    index = index_of(timeline.samples)
    chosen = failed = 0
    for name in set(probes):
        if (probe := index.probe(name)) is not None:
            rows = _phase_rows(index, probe, sla.phase)
            chosen += len(rows)
            failed += bytes(map(index.log.ok.__getitem__, rows)).count(0)
    if not chosen:
        return _verdict(sla, None, sla.max, "ratio", f"no samples in phase {sla.phase}", probes, phase=sla.phase)
    return _verdict(
        sla,
        failed / chosen,
        sla.max,
        "ratio",
        f"{failed} of {chosen} samples failed in {sla.phase}",
        probes,
        resolution=1 / chosen,
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
    """Whether the recovery phase has seen enough: each recovery window measured, each alert SLA decided.

    With no recovery-window SLA, the drill waits until every probe has been healthy for
    DEFAULT_STABLE_FOR after `after` (the last revert).
    """
    if any(isinstance(s, AlertSlaBase) for s in spec.spec.slas) and not alerts_decided(
        spec, timeline, fault_moments(spec, timeline)
    ):
        return False
    windows = [s for s in spec.spec.slas if isinstance(s, RecoveryWindowSla)]
    if not windows:
        return recovered_at(timeline, timeline.probes, after, DEFAULT_STABLE_FOR) is not None
    for sla in windows:
        _, ref, at = measure_recovery(sla, timeline)
        if ref is not None and at is None:
            return False
    return True
