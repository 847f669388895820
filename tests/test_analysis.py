"""Pure analysis on hand-made timelines: percentiles, probe stats, recovery and impact moments,
unavailability, recovery windows, SLA verdicts and when the recovery phase has seen enough.

Timelines are written as patterns: "++++----++++" is one sample per interval, `+` passing and
`-` failing. Sample times are rounded so that the arithmetic in assertions is exact.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import pytest

from orchestrator.analysis import (
    drill_verdict,
    failing_at,
    impact_at,
    index_of,
    judge,
    outages,
    percentile,
    probe_stats,
    recovered_at,
    recovery_decided,
    recovery_windows,
    resolution,
    unavailability,
)
from orchestrator.model.spec import DrillSpec
from orchestrator.model.timeline import FaultMark, PhaseMark, Sample, SampleLog, Timeline
from orchestrator.model.verdict import DrillVerdict, ProbeStats

INTERVAL = 0.1
# baseline [0, 1), fault [1, 3), recovery [3, end)
PHASES = (PhaseMark("baseline", 0.0, 1.0), PhaseMark("fault", 1.0, 3.0), PhaseMark("recovery", 3.0, 10.0))


def phase_at(at: float, phases: Sequence[PhaseMark] = PHASES) -> str:
    return next((p.name for p in phases if p.start <= at < p.end), phases[-1].name)


def samples(probe: str, pattern: str, *, start: float = 0.0, interval: float = INTERVAL) -> list[Sample]:
    """One sample per character of `pattern` ('+' passes, '-' fails), `interval` apart from `start`."""
    assert set(pattern) <= {"+", "-"}, pattern
    out = []
    for i, char in enumerate(pattern):
        at = round(start + i * interval, 9)
        ok = char == "+"
        out.append(Sample(probe, at, phase_at(at), ok, 0.010 if ok else 0.500, 0.0, None if ok else "refused"))
    return out


def fault(name: str, injected_at: float | None, reverted_at: float | None, type_: str = "network.down") -> FaultMark:
    return FaultMark(
        name=name,
        type=type_,
        params={},
        scheduled_start=injected_at if injected_at is not None else 1.0,
        scheduled_end=reverted_at if reverted_at is not None else 3.0,
        injected_at=injected_at,
        reverted_at=reverted_at,
    )


def timeline(
    patterns: Mapping[str, str], *, faults: Sequence[FaultMark] = (), extra: Sequence[Sample] = ()
) -> Timeline:
    """A timeline of one series per probe, all starting at 0, ending one interval after the last sample."""
    all_samples = [s for probe, pattern in patterns.items() for s in samples(probe, pattern)] + list(extra)
    end = max((s.at for s in all_samples), default=0.0) + INTERVAL
    return Timeline(
        interval=INTERVAL,
        probes=tuple(patterns),
        samples=tuple(all_samples),
        phases=PHASES,
        faults=tuple(faults),
        end=round(end, 9),
    )


def drill(slas: Sequence[Mapping[str, Any]], probes: Sequence[str] = ("api",)) -> DrillSpec:
    """A DrillSpec built from plain data (the aliases `apiVersion` and `from` as in YAML)."""
    return DrillSpec.model_validate(
        {
            "apiVersion": "drillctl.dev/v1",
            "kind": "Drill",
            "metadata": {"name": "analysis"},
            "spec": {
                "proxies": [{"name": "db", "listen": "127.0.0.1:25432", "upstream": "127.0.0.1:5432"}],
                "steady_state": {
                    "interval": "100ms",
                    "probes": [{"name": p, "type": "tcp", "host": "127.0.0.1", "port": 25432} for p in probes],
                },
                "faults": [
                    {"name": "latency", "type": "network.latency", "proxy": "db", "latency": "1s", "duration": "1s"},
                    {"name": "outage", "type": "network.down", "proxy": "db", "start": "500ms", "duration": "1500ms"},
                ],
                "slas": list(slas),
            },
        }
    )


# api passes for 1s, fails from 1.0 to 3.4 (25 samples), then passes from 3.5 to 6.4
OUTAGE = "+" * 10 + "-" * 25 + "+" * 30


# --- percentile and probe_stats -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "expected"),
    [(0, 1.0), (10, 1.0), (11, 2.0), (50, 5.0), (51, 6.0), (90, 9.0), (91, 10.0), (99, 10.0), (100, 10.0)],
)
def test_percentile_is_nearest_rank(q: float, expected: float) -> None:
    values = [float(v) for v in range(1, 11)]
    assert percentile(values, q) == expected


def test_percentile_returns_an_observed_value_and_none_when_empty() -> None:
    assert percentile([0.2, 0.7], 50) == 0.2
    assert percentile([0.2, 0.7], 75) == 0.7
    assert percentile([0.3], 99) == 0.3
    assert percentile([], 50) is None


def test_probe_stats_per_probe_and_phase() -> None:
    def at(probe: str, t: float, ok: bool, latency: float | None) -> Sample:
        return Sample(probe, t, phase_at(t), ok, latency, 0.0)

    baseline = [at("api", i / 10, True, (i + 1) / 100) for i in range(10)]  # 10ms .. 100ms
    fault_phase = [at("api", 1.0, True, 0.05), at("api", 1.1, False, 2.0), at("api", 1.2, False, None)]
    db = [at("db", 1.0, False, 0.3)]
    tl = Timeline(INTERVAL, ("api", "db"), tuple(baseline + fault_phase + db), PHASES, (), 1.3)

    stats = probe_stats(tl)

    assert [(s.probe, s.phase) for s in stats] == [("api", "baseline"), ("api", "fault"), ("db", "fault")]
    no_lag = {"lag_p50": 0.0, "lag_p99": 0.0, "lag_max": 0.0, "jitter": 0.0}
    assert stats[0] == ProbeStats(
        "api", "baseline", samples=10, failures=0, p50=0.05, p90=0.09, p99=0.10, max=0.10, p999=0.10, **no_lag
    )
    # a failed sample counts with its latency; one without a latency only counts as a sample
    assert stats[1] == ProbeStats(
        "api", "fault", samples=3, failures=2, p50=0.05, p90=2.0, p99=2.0, max=2.0, p999=2.0, **no_lag
    )
    assert stats[1].error_rate == pytest.approx(2 / 3)
    assert stats[2].error_rate == 1.0


# --- recovered_at -------------------------------------------------------------------------------


def test_recovered_at_the_first_passing_sample_of_a_stable_stretch() -> None:
    tl = timeline({"api": "---" + "+" * 11})
    assert recovered_at(tl, ["api"], after=0.0, stable_for=1.0) == 0.3


def test_recovered_at_skips_flaps_shorter_than_stable_for() -> None:
    #                   0.0  0.2   0.5  0.8  1.0 (stable from 1.0 to 2.0)
    tl = timeline({"api": "--" + "+++" + "---" + "++" + "-" + "+" * 11})
    assert recovered_at(tl, ["api"], after=0.0, stable_for=1.0) == 1.1
    assert recovered_at(tl, ["api"], after=0.0, stable_for=0.2) == 0.2


def test_recovered_at_is_none_when_it_never_recovers() -> None:
    tl = timeline({"api": "+" * 10 + "-" * 20})
    assert recovered_at(tl, ["api"], after=1.0, stable_for=0.1) is None


def test_recovered_at_is_none_until_stable_for_has_been_observed() -> None:
    tl = timeline({"api": "---" + "+" * 10})  # passing from 0.3 to 1.2: 0.9s observed
    assert recovered_at(tl, ["api"], after=0.0, stable_for=1.0) is None
    assert recovered_at(tl, ["api"], after=0.0, stable_for=0.9) == 0.3


def test_recovered_at_waits_for_every_probe() -> None:
    tl = timeline({"api": "-----" + "+" * 20, "db": "-" * 10 + "+" * 15})
    assert recovered_at(tl, ["api"], after=0.0, stable_for=1.0) == 0.5
    assert recovered_at(tl, ["db"], after=0.0, stable_for=1.0) == 1.0
    assert recovered_at(tl, ["api", "db"], after=0.0, stable_for=1.0) == 1.0


def test_recovered_at_never_reports_a_moment_before_after() -> None:
    tl = timeline({"api": "+" * 30})
    assert recovered_at(tl, ["api"], after=0.75, stable_for=1.0) == 0.75
    # a stable stretch that ended before `after` does not count
    tl = timeline({"api": "+" * 15 + "-" * 10 + "+" * 5})
    assert recovered_at(tl, ["api"], after=1.5, stable_for=1.0) is None


def test_recovered_at_is_none_for_a_probe_without_samples() -> None:
    tl = timeline({"api": "+" * 20})
    assert recovered_at(tl, ["api", "ghost"], after=0.0, stable_for=0.5) is None


# --- impact_at and unavailability ---------------------------------------------------------------


def test_impact_at_is_the_first_failing_sample_in_the_window() -> None:
    tl = timeline({"api": "+++" + "--" + "+++" + "-", "db": "+" * 4 + "-" * 5})
    assert impact_at(tl, ["api"], 0.0, 1.0) == 0.3
    assert impact_at(tl, ["api", "db"], 0.0, 1.0) == 0.3
    assert impact_at(tl, ["db"], 0.0, 1.0) == 0.4
    assert impact_at(tl, ["api"], 0.5, 0.8) == 0.8  # both ends are inclusive
    assert impact_at(tl, ["api"], 0.5, 0.7) is None


def test_a_two_second_outage_at_100ms_measures_two_seconds() -> None:
    tl = timeline({"api": "+" * 10 + "-" * 20 + "+" * 10})
    assert unavailability(tl, ["api"], 0.0, tl.end) == pytest.approx(2.0)


def test_unavailability_is_clipped_to_the_window() -> None:
    tl = timeline({"api": "+" * 10 + "-" * 20 + "+" * 10})
    assert unavailability(tl, ["api"], 1.5, 2.0) == pytest.approx(0.5)
    assert unavailability(tl, ["api"], 2.5, 4.0) == pytest.approx(0.5)
    assert unavailability(tl, ["api"], 3.0, 4.0) == 0.0


def test_unavailability_counts_the_time_any_probe_fails_once() -> None:
    # api fails 1.0-1.9, db fails 1.5-2.4: at least one fails from 1.0 to 2.5
    tl = timeline({"api": "+" * 10 + "-" * 10 + "+" * 10, "db": "+" * 15 + "-" * 10 + "+" * 5})
    assert unavailability(tl, ["api", "db"], 0.0, tl.end) == pytest.approx(1.5)
    assert unavailability(tl, ["db"], 0.0, tl.end) == pytest.approx(1.0)


def test_no_failure_means_no_unavailability() -> None:
    tl = timeline({"api": "+" * 30})
    assert unavailability(tl, ["api"], 0.0, tl.end) == 0.0


# --- recovery_windows ---------------------------------------------------------------------------


def test_recovery_window_of_a_fault() -> None:
    tl = timeline({"api": "+" * 12 + "-" * 23 + "+" * 30}, faults=[fault("outage", 1.0, 3.0)])
    [window] = recovery_windows(drill([]), tl)
    assert window.fault == "outage"
    assert window.time_to_impact == pytest.approx(0.2)
    assert window.time_to_recover == pytest.approx(0.5)
    assert window.unavailability == pytest.approx(2.3)  # 1.2 to 3.5
    assert window.resolution == INTERVAL


def test_recovery_windows_skip_faults_never_injected_and_use_the_end_for_unreverted_ones() -> None:
    tl = timeline(
        {"api": "+" * 10 + "-" * 20},
        faults=[fault("latency", None, None), fault("outage", 1.0, None)],
    )
    [window] = recovery_windows(drill([]), tl)
    assert window.fault == "outage"
    assert window.time_to_impact == 0.0
    assert window.time_to_recover is None
    assert window.unavailability == pytest.approx(2.0)  # from 1.0 to the end of the timeline (3.0)


def test_recovery_window_uses_the_stable_for_of_the_faults_sla() -> None:
    # passing again from 3.5 to 4.9 (1.4s observed): enough for stable_for 1s, not for 2s
    tl = timeline({"api": "+" * 10 + "-" * 25 + "+" * 15}, faults=[fault("outage", 1.0, 3.0)])
    relaxed = drill([{"name": "r", "type": "recovery_window", "fault": "outage", "max": "5s", "stable_for": "1s"}])
    strict = drill([{"name": "r", "type": "recovery_window", "fault": "outage", "max": "5s", "stable_for": "2s"}])
    assert recovery_windows(relaxed, tl)[0].time_to_recover == pytest.approx(0.5)
    assert recovery_windows(strict, tl)[0].time_to_recover is None


# --- judge: recovery_window ---------------------------------------------------------------------


def recovery_sla(**fields: Any) -> dict[str, Any]:
    return {"name": "recovers", "type": "recovery_window", "stable_for": "1s", **fields}


@pytest.mark.parametrize(
    ("measured_from", "limit", "passed"),
    [
        ("fault_end", "600ms", True),
        ("fault_end", "500ms", True),
        ("fault_end", "400ms", False),
        ("fault_start", "2600ms", True),
        ("fault_start", "2500ms", True),
        ("fault_start", "2400ms", False),
    ],
)
def test_recovery_window_passes_and_fails_around_its_limit(measured_from: str, limit: str, passed: bool) -> None:
    tl = timeline({"api": OUTAGE}, faults=[fault("outage", 1.0, 3.0)])
    spec = drill([recovery_sla(**{"from": measured_from, "fault": "outage", "max": limit})])

    [verdict] = judge(spec, tl)

    assert verdict.passed is passed
    assert verdict.measured == pytest.approx(0.5 if measured_from == "fault_end" else 2.5)
    assert verdict.unit == "s"
    assert f"after {measured_from} of outage" in verdict.detail


def test_recovery_window_default_is_from_fault_end() -> None:
    tl = timeline({"api": OUTAGE}, faults=[fault("outage", 1.0, 3.0)])
    [verdict] = judge(drill([recovery_sla(max="1s")]), tl)
    assert verdict.measured == pytest.approx(0.5)
    assert "after fault_end of outage" in verdict.detail


def test_recovery_window_default_fault_is_first_to_start_or_last_to_end() -> None:
    faults = [fault("latency", 1.0, 2.0, "network.latency"), fault("outage", 1.5, 3.0)]
    tl = timeline({"api": OUTAGE}, faults=faults)
    from_start, from_end = judge(
        drill([recovery_sla(**{"from": "fault_start", "max": "5s"}), recovery_sla(name="end", max="5s")]), tl
    )
    assert "fault_start of latency" in from_start.detail
    assert from_start.measured == pytest.approx(2.5)
    assert "fault_end of outage" in from_end.detail
    assert from_end.measured == pytest.approx(0.5)


def test_recovery_window_only_waits_for_its_own_probes() -> None:
    tl = timeline({"api": OUTAGE, "db": "+" * 10 + "-" * 30 + "+" * 25}, faults=[fault("outage", 1.0, 3.0)])
    limit = "800ms"
    spec = drill([recovery_sla(probes=["api"], max=limit), recovery_sla(name="all", max=limit)], probes=("api", "db"))
    only_api, every_probe = judge(spec, tl)
    assert only_api.passed is True
    assert only_api.measured == pytest.approx(0.5)
    assert every_probe.passed is False
    assert every_probe.measured == pytest.approx(1.0)


def test_recovery_window_fails_without_a_measure_when_it_never_recovers() -> None:
    tl = timeline({"api": "+" * 10 + "-" * 40}, faults=[fault("outage", 1.0, 3.0)])
    [verdict] = judge(drill([recovery_sla(max="10s")]), tl)
    assert verdict.passed is False
    assert verdict.measured is None
    assert verdict.margin is None
    assert "no recovery stable for 1s observed after fault_end of outage" in verdict.detail


def test_recovery_window_fails_when_its_fault_never_ran() -> None:
    tl = timeline({"api": "+" * 50}, faults=[fault("outage", None, None)])
    [verdict] = judge(drill([recovery_sla(fault="outage", max="10s")]), tl)
    assert verdict.passed is False
    assert verdict.measured is None
    assert "never ran" in verdict.detail


def test_recovery_from_fault_start_counts_an_impact_that_comes_late() -> None:
    # The fault starts at 1.0 but the probes only notice at 2.5 (a pool draining, a health check
    # timing out); they pass again from 4.0. The service was down 1.5s and came back 3.0s after
    # the fault started, so a 2s window from fault_start is breached.
    tl = timeline({"api": "+" * 25 + "-" * 15 + "+" * 25}, faults=[fault("outage", 1.0, 3.0)])
    [verdict] = judge(drill([recovery_sla(**{"from": "fault_start", "max": "2s"})]), tl)
    assert verdict.measured == pytest.approx(3.0)
    assert verdict.passed is False


# --- judge: error_rate and latency --------------------------------------------------------------


@pytest.mark.parametrize(("limit", "passed"), [(0.3, True), (0.25, True), (0.2, False)])
def test_error_rate_in_a_phase(limit: float, passed: bool) -> None:
    # fault phase [1, 3): 20 samples of which 5 fail; failures elsewhere do not count
    tl = timeline({"api": "-" * 10 + "+" * 5 + "-" * 5 + "+" * 10 + "-" * 10})
    [verdict] = judge(drill([{"name": "errors", "type": "error_rate", "phase": "fault", "max": limit}]), tl)
    assert verdict.measured == pytest.approx(0.25)
    assert verdict.passed is passed
    assert verdict.unit == "ratio"
    assert verdict.detail == "5 of 20 samples failed in fault"


def test_error_rate_over_selected_probes_only() -> None:
    tl = timeline({"api": "+" * 30, "db": "+" * 10 + "-" * 20})
    spec = drill(
        [
            {"name": "api-only", "type": "error_rate", "probes": ["api"], "phase": "fault", "max": 0.0},
            {"name": "all", "type": "error_rate", "phase": "fault", "max": 0.4},
        ],
        probes=("api", "db"),
    )
    api_only, every_probe = judge(spec, tl)
    assert (api_only.passed, api_only.measured) == (True, 0.0)
    assert every_probe.passed is False
    assert every_probe.measured == pytest.approx(0.5)


def test_error_rate_without_samples_in_the_phase_fails() -> None:
    tl = timeline({"api": "+" * 5})  # baseline only
    [verdict] = judge(drill([{"name": "errors", "type": "error_rate", "phase": "recovery", "max": 1.0}]), tl)
    assert verdict.passed is False
    assert verdict.measured is None
    assert verdict.detail == "no samples in phase recovery"


def latency_timeline(latencies_ms: Sequence[float]) -> Timeline:
    """`api` in the fault phase with the given latencies."""
    rows = [
        Sample("api", round(1.0 + i * INTERVAL, 9), "fault", True, ms / 1000, 0.0) for i, ms in enumerate(latencies_ms)
    ]
    return Timeline(INTERVAL, ("api",), tuple(rows), PHASES, (), 3.0)


# ten samples: p50 = 50ms, p90 = 90ms, p99 = max = 190ms
LATENCIES = [10, 20, 30, 40, 50, 60, 70, 80, 90, 190]


def latency_sla(**limits: str) -> dict[str, Any]:
    return {"name": "fast", "type": "latency", "probe": "api", "phase": "fault", "runbook": "runbooks/x.md#y", **limits}


def test_latency_reports_the_threshold_closest_to_its_limit() -> None:
    # p50 has 50% headroom, p99 only 5%: p99 is the one to show
    [verdict] = judge(drill([latency_sla(p50="100ms", p99="200ms")]), latency_timeline(LATENCIES))
    assert verdict.passed is True
    assert verdict.measured == pytest.approx(0.19)
    assert verdict.threshold == pytest.approx(0.2)
    assert verdict.detail == "p99 of api in fault over 10 samples (exact, nearest rank)"
    assert verdict.runbook == "runbooks/x.md#y"


def test_latency_reports_the_breached_threshold() -> None:
    [verdict] = judge(drill([latency_sla(p50="40ms", p99="200ms")]), latency_timeline(LATENCIES))
    assert verdict.passed is False
    assert verdict.measured == pytest.approx(0.05)
    assert verdict.threshold == pytest.approx(0.04)
    assert verdict.margin == pytest.approx(-0.01)
    assert verdict.detail.startswith("p50 of api")


def test_latency_reports_the_threshold_breached_the_most_relative_to_its_limit() -> None:
    # p90 is 90ms over an 80ms limit (12.5% over); max is 190ms over 100ms (90% over)
    [verdict] = judge(drill([latency_sla(p90="80ms", max="100ms")]), latency_timeline(LATENCIES))
    assert verdict.passed is False
    assert verdict.detail.startswith("max of api")
    assert verdict.measured == pytest.approx(0.19)


def test_latency_without_samples_in_the_phase_fails() -> None:
    [verdict] = judge(drill([latency_sla(p90="1s", phase="recovery")]), latency_timeline(LATENCIES))
    assert verdict.passed is False
    assert verdict.measured is None
    assert verdict.threshold == 1.0
    assert verdict.detail == "no samples of api in phase recovery"


def test_judge_returns_one_verdict_per_sla_in_order() -> None:
    tl = timeline({"api": OUTAGE}, faults=[fault("outage", 1.0, 3.0)])
    spec = drill(
        [
            {"name": "b-errors", "type": "error_rate", "phase": "baseline", "max": 0.0},
            recovery_sla(name="a-recovers", max="1s"),
        ]
    )
    assert [(v.name, v.type, v.passed) for v in judge(spec, tl)] == [
        ("b-errors", "error_rate", True),
        ("a-recovers", "recovery_window", True),
    ]


# --- recovery_decided ---------------------------------------------------------------------------


def test_recovery_is_decided_once_every_window_is_measured() -> None:
    faults = [fault("outage", 1.0, 3.0)]
    spec = drill([recovery_sla(max="1s", stable_for="1s")])
    # passing again from 3.5: 1s of stability is observed once the sample at 4.5 is in
    assert recovery_decided(spec, timeline({"api": "+" * 10 + "-" * 25 + "+" * 10}, faults=faults), 3.0) is False
    assert recovery_decided(spec, timeline({"api": "+" * 10 + "-" * 25 + "+" * 11}, faults=faults), 3.0) is True


def test_recovery_decided_waits_for_the_longest_stable_for() -> None:
    faults = [fault("outage", 1.0, 3.0)]
    spec = drill([recovery_sla(max="1s", stable_for="1s"), recovery_sla(name="long", max="5s", stable_for="2s")])
    assert recovery_decided(spec, timeline({"api": "+" * 10 + "-" * 25 + "+" * 15}, faults=faults), 3.0) is False
    assert recovery_decided(spec, timeline({"api": "+" * 10 + "-" * 25 + "+" * 21}, faults=faults), 3.0) is True


def test_recovery_decided_without_recovery_slas_waits_one_second_of_health() -> None:
    spec = drill([{"name": "errors", "type": "error_rate", "phase": "fault", "max": 1.0}])
    assert recovery_decided(spec, timeline({"api": "+" * 10 + "-" * 25 + "+" * 10}), 3.0) is False
    assert recovery_decided(spec, timeline({"api": "+" * 10 + "-" * 25 + "+" * 11}), 3.0) is True


def test_recovery_decided_ignores_a_window_whose_fault_never_ran() -> None:
    spec = drill([recovery_sla(fault="latency", max="1s")])
    tl = timeline({"api": "+" * 10 + "-" * 40}, faults=[fault("latency", None, None), fault("outage", 1.0, 3.0)])
    assert recovery_decided(spec, tl, 3.0) is True


# --- edge cases of whole drills: windows, resolution, verdicts -----------------------------------


def outage_sla(**fields: Any) -> dict[str, Any]:
    return {"name": "recovers", "type": "recovery_window", "fault": "outage", "stable_for": "1s", **fields}


def test_no_failure_at_all() -> None:
    tl = timeline({"api": "+" * 60}, faults=[fault("outage", 1.0, 3.0)])
    spec = drill([outage_sla(max="1s", **{"from": "fault_start"})])
    [window] = recovery_windows(spec, tl)
    assert (window.recovery, window.time_to_impact, window.unavailability, window.longest_outage) == (
        "not_impacted",
        None,
        0.0,
        0.0,
    )
    assert window.time_to_recover == 0.0 and window.failing_at_injection is False
    [verdict] = judge(spec, tl)
    assert verdict.passed and verdict.measured == 0.0
    assert drill_verdict("completed", [verdict]) == DrillVerdict("PASS")


def test_never_recovered() -> None:
    tl = timeline({"api": "+" * 10 + "-" * 30}, faults=[fault("outage", 1.0, 3.0)])
    spec = drill([outage_sla(max="1s")])
    [window] = recovery_windows(spec, tl)
    assert window.recovery == "not_recovered"
    assert window.time_to_recover is None and window.recovered_at is None
    assert window.unavailability == pytest.approx(3.0) == window.longest_outage  # 1.0 to the end, 4.0
    [verdict] = judge(spec, tl)
    assert verdict.passed is False and verdict.measured is None and verdict.marginal is False
    assert verdict.result == "FAIL" and "no recovery stable for 1s" in verdict.detail
    assert drill_verdict("completed", [verdict]) == DrillVerdict("FAIL", ("recovers",))


def test_flapping_counts_every_outage_and_recovers_only_when_stable() -> None:
    # during and just after the fault: fail, fail, pass, eight times (1.0 to 3.3), then passing for good
    tl = timeline({"api": "+" * 10 + "--+" * 8 + "+" * 20}, faults=[fault("outage", 1.0, 3.0)])
    [window] = recovery_windows(drill([]), tl)
    assert window.time_to_impact == 0.0
    assert window.unavailability == pytest.approx(1.6)  # eight outages of 200ms
    assert window.longest_outage == pytest.approx(0.2)
    assert window.recovered_at == pytest.approx(3.3)  # the single passing samples were never stable for 1s
    assert window.recovery == "after_revert"
    assert window.time_to_recover == pytest.approx(0.3)


def test_recovered_before_the_revert() -> None:
    tl = timeline({"api": "+" * 10 + "-" * 5 + "+" * 40}, faults=[fault("outage", 1.0, 3.0)])
    [window] = recovery_windows(drill([]), tl)
    assert window.recovery == "before_revert"
    assert window.recovered_at == pytest.approx(1.5)
    assert window.time_to_recover == 0.0  # still healthy when the fault ended
    assert window.unavailability == pytest.approx(0.5)


def test_failure_before_injection_is_flagged() -> None:
    tl = timeline({"api": "+" * 5 + "-" * 20 + "+" * 30}, faults=[fault("outage", 1.0, 3.0)])
    [window] = recovery_windows(drill([]), tl)
    assert window.failing_at_injection is True
    assert window.time_to_impact == 0.0
    assert window.unavailability == pytest.approx(1.5)  # counted from the injection only: 1.0 to 2.5


def test_a_gap_in_sampling_widens_the_resolution_and_marks_a_close_pass() -> None:
    # samples every 100ms to 1.0s (the last one failing), none until 2.0s, then passing
    gap = samples("api", "+" * 10 + "-") + samples("api", "+" * 30, start=2.0)
    tl = Timeline(INTERVAL, ("api",), tuple(gap), PHASES, (fault("outage", 1.0, 1.5),), end=5.0)
    spec = drill([outage_sla(max="1s")])
    [window] = recovery_windows(spec, tl)
    assert window.resolution == pytest.approx(1.0)  # the 1s gap, not the 100ms interval
    assert window.time_to_recover == pytest.approx(0.5)
    [verdict] = judge(spec, tl)
    assert verdict.passed and verdict.margin == pytest.approx(0.5) and verdict.resolution == pytest.approx(1.0)
    assert verdict.marginal and verdict.result == "PASS (within resolution)"
    assert drill_verdict("completed", [verdict]) == DrillVerdict("PASS", (), ("recovers",))


def test_a_clear_pass_is_not_marginal_and_a_late_start_widens_the_resolution() -> None:
    # the first passing sample, scheduled at 3.5, started 30ms late: recovery is dated 3.53, and the
    # edge lies somewhere between the starts 3.4 and 3.53
    lagging = [replace(s, lag=0.03) if s.at == 3.5 else s for s in samples("api", OUTAGE)]
    tl = Timeline(INTERVAL, ("api",), tuple(lagging), PHASES, (fault("outage", 1.0, 3.0),), end=6.5)
    [verdict] = judge(drill([outage_sla(max="2s")]), tl)
    assert verdict.measured == pytest.approx(0.53)
    assert verdict.resolution == pytest.approx(0.13)
    assert not verdict.marginal and verdict.result == "PASS"
    assert "sampler lag up to 30ms" in verdict.detail
    [window] = recovery_windows(drill([]), tl)
    assert window.sampler_lag == pytest.approx(0.03) and window.resolution == pytest.approx(0.13)


# --- dating by the real start: `at + lag` --------------------------------------------------------


def lagged(pattern: str, lags: Mapping[float, float], *, every: float = 0.0) -> tuple[Sample, ...]:
    """The samples of `pattern` for probe api, each `every` late, and those scheduled at a key of `lags` that late."""
    return tuple(replace(s, lag=lags.get(s.at, every)) for s in samples("api", pattern))


def test_a_late_sample_dates_its_health_change_when_it_really_started() -> None:
    # The proxy is down from 1.02 to 3.43 (truth). The sample scheduled at 1.0 started 40ms late
    # (1.04) and failed; the one scheduled at 3.4 started 60ms late (3.46) and passed. Dated by
    # schedule, that outage would read 1.0-3.4, and the recovery would precede the revert it
    # followed; dated by the real start it reads 1.04-3.46, inside what the samples could see.
    pattern = "+" * 10 + "-" * 24 + "+" * 30  # fails at 1.0-3.3, passes from 3.4
    tl = Timeline(INTERVAL, ("api",), lagged(pattern, {1.0: 0.04, 3.4: 0.06}), PHASES, (fault("outage", 1.02, 3.43),))
    tl = replace(tl, end=6.4)
    assert impact_at(tl, ["api"], 1.02, 3.43) == pytest.approx(1.04)
    assert unavailability(tl, ["api"], 0.0, tl.end) == pytest.approx(3.46 - 1.04)
    assert recovered_at(tl, ["api"], 1.02, 1.0) == pytest.approx(3.46)
    assert failing_at(tl, ["api"], 1.03) is False and failing_at(tl, ["api"], 1.05) is True
    [window] = recovery_windows(drill([]), tl)
    assert window.recovery == "after_revert"  # dated 3.4 by schedule, it would read before_revert
    assert window.time_to_impact == pytest.approx(0.02)
    assert window.time_to_recover == pytest.approx(0.03)
    # the edges lie between the starts 0.9 and 1.04, and 3.3 and 3.46: 160ms at most
    assert window.resolution == pytest.approx(0.16) and window.sampler_lag == pytest.approx(0.06)


def test_a_steady_sampler_lag_neither_moves_a_window_nor_widens_its_resolution() -> None:
    pattern = "+" * 10 + "-" * 20 + "+" * 30
    on_time = timeline({"api": pattern}, faults=[fault("outage", 1.0, 3.0)])
    late = replace(on_time, samples=lagged(pattern, {}, every=0.004))
    assert unavailability(late, ["api"], 0.0, late.end) == pytest.approx(2.0)
    [window] = recovery_windows(drill([]), late)
    [reference] = recovery_windows(drill([]), on_time)
    assert window.unavailability == pytest.approx(reference.unavailability)
    assert window.time_to_impact == pytest.approx(0.004) and window.time_to_recover == pytest.approx(0.004)
    assert window.resolution == pytest.approx(INTERVAL) and window.sampler_lag == pytest.approx(0.004)


def test_a_sample_never_started_is_dated_when_it_was_scheduled() -> None:
    never = Sample("api", 1.05, "fault", False, None, None, "not started: 10 samples already in flight")
    tl = timeline({"api": "+" * 20}, extra=[never])
    assert impact_at(tl, ["api"], 1.0, 2.0) == 1.05
    assert unavailability(tl, ["api"], 0.0, tl.end) == pytest.approx(0.05)  # until the start at 1.1


def test_error_rate_resolution_is_one_sample() -> None:
    tl = timeline({"api": "+" * 10 + "-" + "+" * 39})
    tight = {"name": "errors", "type": "error_rate", "phase": "recovery", "max": 0.05}
    [verdict] = judge(drill([tight]), tl)
    # recovery phase [3, 5): 20 samples, none failed; one failure would be 5%: at the limit
    assert verdict.measured == 0.0 and verdict.resolution == pytest.approx(0.05)
    assert verdict.marginal


def test_p999_and_sampler_lag_and_jitter_per_window() -> None:
    lat = [Sample("api", round(k * 0.001, 9), "baseline", True, float(k + 1), 0.02 * (k % 2)) for k in range(1000)]
    tl = Timeline(0.001, ("api",), tuple(lat), PHASES, (), end=1.0)
    [row] = probe_stats(tl)
    assert (row.p50, row.p99, row.p999, row.max) == (500.0, 990.0, 999.0, 1000.0)
    assert row.lag_p50 == 0.0 and row.lag_max == pytest.approx(0.02) and row.jitter == pytest.approx(0.02)
    assert row.availability == 1.0 and row.window == "baseline"


def test_probe_stats_per_fault_window() -> None:
    tl = timeline({"api": OUTAGE}, faults=[fault("outage", 1.0, 3.0), fault("never", None, None)])
    rows = [s for s in probe_stats(tl) if s.fault is not None]
    assert [(s.fault, s.window, s.samples, s.failures) for s in rows] == [("outage", "fault outage", 20, 20)]
    assert rows[0].availability == 0.0


@pytest.mark.parametrize(
    ("status", "outcome"), [("aborted", "ABORTED"), ("baseline_failed", "ERROR"), ("preflight_failed", "ERROR")]
)
def test_drill_verdict_of_runs_that_did_not_complete(status: str, outcome: str) -> None:
    assert drill_verdict(status, []).outcome == outcome


# --- the index against a straightforward reference -----------------------------------------------
# The analysis reads samples through a per-probe index (analysis.SampleIndex) built once per sample
# sequence, incrementally for a growing SampleLog. The reference below is the plain reading it
# replaced: group Sample objects per probe and walk them. Both must agree exactly on random timelines.


def ref_series(samples: Sequence[Sample], probes: Sequence[str]) -> dict[str, list[Sample]]:
    wanted: dict[str, list[Sample]] = {p: [] for p in probes}
    for s in samples:
        if s.probe in wanted:
            wanted[s.probe].append(s)
    for series in wanted.values():
        series.sort(key=lambda s: s.started)
    return wanted


def ref_changes(series: dict[str, list[Sample]]) -> list[tuple[float, bool]]:
    events = sorted((s.started, s.probe, s.ok) for samples in series.values() for s in samples)
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


def ref_recovered_at(tl: Timeline, probes: Sequence[str], after: float, stable_for: float) -> float | None:
    series = ref_series(tl.samples, probes)
    if not series or any(not s for s in series.values()):
        return None
    observed_until = min(samples[-1].started for samples in series.values())
    changes = ref_changes(series)
    for k, (at, healthy) in enumerate(changes):
        until = changes[k + 1][0] if k + 1 < len(changes) else None
        if not healthy or (until is not None and until <= after):
            continue
        begin = max(at, after)
        if (until if until is not None else observed_until) - begin >= stable_for - 1e-9:
            return begin
    return None


def ref_outages(tl: Timeline, probes: Sequence[str], start: float, end: float) -> list[float]:
    changes = ref_changes(ref_series(tl.samples, probes))
    out = []
    for k, (at, healthy) in enumerate(changes):
        until = changes[k + 1][0] if k + 1 < len(changes) else end
        lo, hi = max(at, start), min(until, end)
        if not healthy and hi > lo:
            out.append(hi - lo)
    return out


def ref_impact_at(tl: Timeline, probes: Sequence[str], start: float, end: float) -> float | None:
    chosen = (s.started for s in tl.samples if s.probe in probes and not s.ok and start <= s.started <= end)
    return min(chosen, default=None)


def ref_failing_at(tl: Timeline, probes: Sequence[str], at: float) -> bool:
    return any(
        [s for s in series if s.started < at][-1:] and not [s for s in series if s.started < at][-1].ok
        for series in ref_series(tl.samples, probes).values()
    )


def ref_resolution(tl: Timeline, probes: Sequence[str], start: float, end: float) -> tuple[float, float]:
    gap, lag = tl.interval, 0.0
    for series in ref_series(tl.samples, probes).values():
        for a, b in itertools.pairwise(series):
            if b.started >= start and a.started <= end:
                gap = max(gap, round(b.started - a.started, 9))
        for s in series:
            if start - tl.interval <= s.started <= end + tl.interval:
                lag = max(lag, s.lag or 0.0)
    return gap, lag


def ref_stats(probe: str, phase: str, chosen: Sequence[Sample], fault: str | None = None) -> ProbeStats:
    lat = sorted(s.latency for s in chosen if s.latency is not None)
    lags = [s.lag or 0.0 for s in sorted(chosen, key=lambda s: s.started)]
    steps = sorted(abs(b - a) for a, b in itertools.pairwise(lags))
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
        lag_p50=percentile(sorted(lags), 50),
        lag_p99=percentile(sorted(lags), 99),
        lag_max=max(lags, default=None),
        jitter=percentile(steps, 99),
    )


def ref_probe_stats(tl: Timeline) -> list[ProbeStats]:
    out = []
    for phase in ("baseline", "fault", "recovery"):
        for probe in tl.probes:
            if chosen := [s for s in tl.samples if s.probe == probe and s.phase == phase]:
                out.append(ref_stats(probe, phase, chosen))
    for mark in tl.faults:
        if mark.injected_at is None:
            continue
        start, end = mark.injected_at, mark.end if mark.end is not None else tl.end
        for probe in tl.probes:
            if chosen := [s for s in tl.samples if s.probe == probe and start <= s.started < end]:
                out.append(ref_stats(probe, "fault", chosen, fault=mark.name))
    return out


def random_samples(rnd: random.Random, probes: Sequence[str], count: int) -> list[Sample]:
    """Samples in landing order: out of order, on a coarse grid so that starts tie (no lag, or none known) or
    swap (a lag past the next slot), flapping or in outages."""
    out = []
    fail_rate = rnd.choice([0.05, 0.3, 0.7])
    for _ in range(count):
        probe = rnd.choice(probes)
        at = round(rnd.randrange(0, 120) * 0.05, 9)
        ok = rnd.random() > (fail_rate if 1.0 <= at < 3.5 else fail_rate / 5)
        latency = None if rnd.random() < 0.05 else round(rnd.uniform(0.001, 0.5), 6)
        lag = rnd.choice([None, 0.0, 0.0, 0.0, round(rnd.expovariate(1000), 6), round(rnd.uniform(0.0, 0.12), 6)])
        out.append(Sample(probe, at, phase_at(at), ok, latency, lag, None if ok else rnd.choice(["refused", "reset"])))
    return out


def assert_same_as_reference(tl: Timeline, rnd: random.Random) -> None:
    assert probe_stats(tl) == ref_probe_stats(tl)
    for _ in range(12):
        chosen = rnd.sample((*tl.probes, "absent"), rnd.randint(1, 2)) if rnd.random() < 0.2 else list(tl.probes)
        chosen = chosen if rnd.random() < 0.9 else [tl.probes[0]]
        start = round(rnd.uniform(-0.5, 6.5), 2)
        end = round(start + rnd.uniform(0.0, 4.0), 2)
        stable = rnd.choice([0.0, 0.1, 0.3, 1.0])
        assert recovered_at(tl, chosen, start, stable) == ref_recovered_at(tl, chosen, start, stable)
        assert outages(tl, chosen, start, end) == ref_outages(tl, chosen, start, end)
        assert impact_at(tl, chosen, start, end) == ref_impact_at(tl, chosen, start, end)
        assert failing_at(tl, chosen, start) == ref_failing_at(tl, chosen, start)
        assert resolution(tl, chosen, start, end) == ref_resolution(tl, chosen, start, end)


@pytest.mark.parametrize("seed", range(40))
def test_the_index_gives_the_reference_results_on_random_timelines(seed: int) -> None:
    rnd = random.Random(seed)
    probes = ("api", "db", "cache")[: rnd.randint(1, 3)]
    landed = random_samples(rnd, probes, rnd.randint(1, 150))
    faults = [fault("outage", 1.0, 3.0), fault("late", 2.5, None)]
    as_tuple = Timeline(INTERVAL, probes, tuple(landed), PHASES, tuple(faults), end=6.0)
    assert_same_as_reference(as_tuple, rnd)
    log = SampleLog()
    for sample in landed:
        log.append(sample)
    assert_same_as_reference(replace(as_tuple, samples=log), random.Random(seed))


@pytest.mark.parametrize("seed", range(20))
def test_the_index_of_a_growing_log_keeps_up_with_samples_landing_out_of_order(seed: int) -> None:
    """As in the engine's recovery phase: asked after every landed sample, over one SampleLog."""
    rnd = random.Random(seed)
    probes = ("api", "db")
    log = SampleLog()
    spec = drill([recovery_sla(max="5s", stable_for="300ms")], probes=probes)
    faults = (fault("outage", 1.0, 3.0),)
    for sample in random_samples(rnd, probes, 120):
        log.append(sample)
        tl = Timeline(INTERVAL, probes, log, PHASES, faults, end=6.0)
        frozen = replace(tl, samples=tuple(log))
        assert recovery_decided(spec, tl, 3.0) == recovery_decided(spec, frozen, 3.0)
        after = round(rnd.uniform(0.0, 6.0), 2)
        assert recovered_at(tl, probes, after, 0.3) == ref_recovered_at(frozen, probes, after, 0.3)
        assert outages(tl, probes, 0.0, 6.0) == ref_outages(frozen, probes, 0.0, 6.0)
    assert_same_as_reference(Timeline(INTERVAL, probes, log, PHASES, faults, end=6.0), rnd)


def test_a_growing_log_is_indexed_incrementally() -> None:
    log = SampleLog()
    for s in samples("api", "+" * 10 + "-" * 5):
        log.append(s)
    index = index_of(log)
    assert index_of(log) is index and index.n == 15
    for s in samples("api", "+" * 12, start=1.5):
        log.append(s)
    assert index_of(log) is index and index.n == 27
    tl = Timeline(INTERVAL, ("api",), log, PHASES, (), end=2.7)
    assert recovered_at(tl, ["api"], 1.5, 1.0) == 1.5
