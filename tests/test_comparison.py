"""Comparison of two runs on hand-made verdicts, and `drillctl compare` on two real runs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

import pytest

from orchestrator.comparison import Change, Tolerance, compare
from orchestrator.model.verdict import DrillVerdict, ProbeStats, RecoveryWindow, SlaVerdict
from tests.reporting import conftest as reporting
from tests.reporting.conftest import Runs
from tests.support import run

real_runs = reporting.real_runs
"""The two real runs of tests/reporting, a session fixture of that folder made visible here."""


@dataclass(frozen=True)
class Judged:
    verdict: DrillVerdict = field(default_factory=lambda: DrillVerdict("PASS"))
    verdicts: list[SlaVerdict] = field(default_factory=list)
    windows: list[RecoveryWindow] = field(default_factory=list)
    stats: list[ProbeStats] = field(default_factory=list)


def recovery(measured: float | None, *, limit: float = 2.0, resolution: float = 0.1) -> SlaVerdict:
    passed = measured is not None and measured <= limit
    return SlaVerdict("recovers", "recovery_window", passed, measured, limit, "s", "", None, resolution=resolution)


def window(recover: float | None, unavailable: float, *, resolution: float = 0.1) -> RecoveryWindow:
    return RecoveryWindow(
        fault="cut",
        time_to_impact=0.1,
        time_to_recover=recover,
        unavailability=unavailable,
        resolution=resolution,
        longest_outage=unavailable,
        recovery="after_revert" if recover is not None else "not_recovered",
    )


def latency(p99: float, failures: int = 0) -> ProbeStats:
    return ProbeStats("api", "fault", 100, failures, 0.002, 0.004, p99, p99)


def run_of(recover: float | None = 0.5, *, p99: float = 0.010, failures: int = 0, **verdict: object) -> Judged:
    unavailable = 1.0 if recover is None else 0.5 + recover
    base = Judged(verdicts=[recovery(recover)], windows=[window(recover, unavailable)], stats=[latency(p99, failures)])
    return replace(base, **verdict)  # type: ignore[arg-type]


def regressions(base: Judged, new: Judged, tolerance: Tolerance | None = None) -> list[tuple[str, str]]:
    return [(c.subject, c.metric) for c in compare(base, new, tolerance).regressions]


def test_the_same_figures_are_no_regression() -> None:
    result = compare(run_of(), run_of())
    assert not result.regressed
    assert {c.subject for c in result.changes} == {"sla recovers", "fault cut", "probe api fault"}


def test_recovery_twice_as_slow_regresses_the_sla_and_the_fault() -> None:
    assert regressions(run_of(0.5), run_of(1.0)) == [
        ("sla recovers", "measured"),
        ("fault cut", "time_to_recover"),
        ("fault cut", "unavailability"),
        ("fault cut", "longest_outage"),
    ]


@pytest.mark.parametrize(
    ("new", "tolerance", "regressed"),
    [
        (0.59, Tolerance(), False),  # +90ms: under the 100ms floor and the 100ms resolution
        (0.61, Tolerance(), True),  # +110ms, more than 20% of 0.5s
        (0.61, Tolerance(relative=0.5), False),  # ... but not more than 50%
        (0.61, Tolerance(relative=0.0, window=0.2), False),  # ... nor more than a 200ms floor
    ],
)
def test_tolerance_is_the_largest_of_relative_floor_and_resolution(
    new: float, tolerance: Tolerance, regressed: bool
) -> None:
    result = compare(run_of(0.5), run_of(new), tolerance)
    sla = next(c for c in result.changes if c.subject == "sla recovers")
    assert sla.regression is regressed
    assert sla.delta == pytest.approx(new - 0.5)


def test_a_wide_resolution_absorbs_a_change_inside_it() -> None:
    base = run_of(0.5, verdicts=[recovery(0.5, resolution=1.0)])
    new = run_of(0.5, verdicts=[recovery(1.4, resolution=1.0)])
    sla = next(c for c in compare(base, new).changes if c.subject == "sla recovers")
    assert sla.allowed == 1.0 and not sla.regression


def test_an_sla_that_now_fails_regresses_however_small_the_change() -> None:
    base, new = run_of(verdicts=[recovery(1.99)]), run_of(verdicts=[recovery(2.01)])
    change = next(c for c in compare(base, new).changes if c.subject == "sla recovers")
    assert change == Change("sla recovers", "passed", "s", 1.99, 2.01, None, True, "PASS -> FAIL")


def test_never_recovering_regresses() -> None:
    result = compare(run_of(0.5), run_of(None, verdict=DrillVerdict("FAIL", ("recovers",))))
    assert ("fault cut", "recovery") in [(c.subject, c.metric) for c in result.regressions]
    assert ("fault cut", "time_to_recover") in [(c.subject, c.metric) for c in result.regressions]


def test_an_aborted_run_regresses_a_completed_one() -> None:
    result = compare(run_of(), run_of(verdict=DrillVerdict("ABORTED")))
    assert [(c.subject, c.note) for c in result.regressions] == [("drill", "PASS -> ABORTED")]


def test_latency_and_error_rate_have_floors_of_their_own() -> None:
    assert regressions(run_of(p99=0.010), run_of(p99=0.019)) == []  # +9ms < 10ms floor
    assert regressions(run_of(p99=0.010), run_of(p99=0.021)) == [("probe api fault", "p99")]
    assert regressions(run_of(failures=0), run_of(failures=1)) == []  # 1% is the floor
    assert regressions(run_of(failures=0), run_of(failures=5)) == [("probe api fault", "error_rate")]


def test_improvements_are_no_regression_and_say_so() -> None:
    base = run_of(2.5, verdict=DrillVerdict("FAIL", ("recovers",)))
    result = compare(base, run_of(0.5))
    assert not result.regressed
    assert next(c for c in result.changes if c.subject == "sla recovers").note == "FAIL -> PASS"


def test_slas_and_faults_missing_from_one_run_are_noted() -> None:
    base = run_of()
    new = replace(run_of(), verdicts=[replace(recovery(0.5), name="other")], windows=[])
    result = compare(base, new)
    assert result.notes == [
        "SLA recovers is not in the new run",
        "SLA other is new",
        "fault cut was not injected in the new run",
    ]


# --- the command, on two real runs (tests/reporting/conftest.py) ----------------------------------


def test_compare_two_real_runs(real_runs: Runs) -> None:
    worse = run("compare", str(real_runs.quick), str(real_runs.slow), "--output", "json")
    assert worse.returncode == 1, worse.stdout + worse.stderr
    document = json.loads(worse.stdout)
    assert document["regression"] is True and document["drill"] == "report-drill"
    failed = {(c["subject"], c["metric"]) for c in document["changes"] if c["regression"]}
    print(sorted(failed))
    assert ("sla stock-recovers", "passed") in failed and ("fault cut", "unavailability") in failed

    # latency on loopback is noise at this scale: the point here is the recovery, so latency is left out
    better = run("compare", str(real_runs.slow), str(real_runs.quick), "--latency-floor", "1s")
    assert better.returncode == 0, better.stdout + better.stderr
    assert "FAIL -> PASS" in better.stdout and better.stdout.rstrip().endswith("no regression")

    same = run("compare", str(real_runs.quick), str(real_runs.quick / "report.json"))
    assert same.returncode == 0 and "REGRESSION" not in same.stdout


def test_compare_refuses_unusable_input(real_runs: Runs) -> None:
    missing = run("compare", str(real_runs.quick), str(real_runs.folder / "nowhere"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    bad = run("compare", str(real_runs.quick), str(real_runs.slow), "--tolerance", "lots")
    assert bad.returncode == 2 and "bad tolerance" in bad.stderr
