"""The pure part of the history: reports into records, series into figures and sparklines, records into
rolling baselines."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.comparison import compare
from orchestrator.history.arguments import parse_baseline, parse_labels, parse_since
from orchestrator.history.model import Series
from orchestrator.history.render import sparkline
from orchestrator.history.trends import baseline, record_of
from tests.history.support import T0, record, report_of


def test_a_report_becomes_the_record_it_was_made_from() -> None:
    rec = record(3, 0.8, labels={"release": "1.4"})
    back = record_of(report_of(rec, Path("runs") / rec.run_id))
    assert back == replace(rec, source=str(Path("runs") / rec.run_id))


def test_a_report_without_labels_or_an_offset_reads_as_utc_and_unlabelled() -> None:
    rec = record(1, 0.5)
    report = report_of(rec, Path("r"))
    back = record_of(replace(report, facts=replace(report.facts, started_at=datetime(2026, 1, 1, 12, 0))))
    assert back.labels == {} and back.started_at == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_a_series_reads_last_median_and_range_over_the_runs_that_measured_it() -> None:
    series = Series("fault cut", "time_to_recover", "s", (0.5, None, 0.9, 0.7))
    assert series.measured == [0.5, 0.9, 0.7]  # the second run never recovered: a gap, not a zero
    assert (series.last, series.median, series.low, series.high) == (0.7, 0.7, 0.5, 0.9)
    gone = Series("fault cut", "time_to_recover", "s", (None,))
    assert (gone.last, gone.median, gone.low, gone.high) == (None, None, None, None)


def test_sparkline_scales_lowest_to_highest_and_leaves_gaps() -> None:
    assert sparkline([1.0, None, 2.0, 3.0]) == "▁ ▅█"
    assert sparkline([2.0, 2.0]) == "▄▄"
    assert sparkline([None, None]) == "  "
    assert sparkline([float(i) for i in range(100)], width=8) == "▁▂▃▄▅▆▇█"  # the newest 8: 92 to 99


def test_a_baseline_is_the_median_of_its_runs_with_the_spread_as_resolution() -> None:
    runs = [record(i, value) for i, value in enumerate([0.50, 0.55, 0.60, 0.62, 0.90])]
    base = baseline(runs)
    assert base.runs == tuple(r.run_id for r in runs)
    (sla,) = base.verdicts
    assert sla.measured == pytest.approx(0.60) and sla.passed and sla.threshold == 2.0
    assert sla.resolution == pytest.approx(0.30)  # 0.90 - 0.60: wider than the 50ms each run resolved
    (window,) = base.windows
    assert window.time_to_recover == pytest.approx(0.60)
    assert window.unavailability == pytest.approx(0.80)
    assert window.resolution == pytest.approx(0.30)
    assert window.recovery == "after_revert"


def test_a_steady_history_keeps_the_measured_resolution() -> None:
    base = baseline([record(i, 0.5, resolution=0.08) for i in range(4)])
    assert base.verdicts[0].resolution == pytest.approx(0.08) and base.windows[0].resolution == pytest.approx(0.08)


def test_a_baseline_judges_with_the_rules_of_compare_widened_by_the_spread() -> None:
    noisy = baseline([record(i, value) for i, value in enumerate([1.0, 0.9, 1.0, 1.1, 1.8])])  # median 1.0, spread 0.8
    steady = baseline([record(i, 1.0) for i in range(5)])
    within = report_of(record(9, 1.6), Path("r"))  # 60% slower than the median: within what the history saw
    assert not compare(noisy, within).regressed, compare(noisy, within).regressions
    assert compare(steady, within).regressed
    beyond = compare(noisy, report_of(record(9, 1.9), Path("r")))
    assert {(c.subject, c.metric) for c in beyond.regressions} == {
        ("sla recovers", "measured"),
        ("fault cut", "time_to_recover"),
        ("fault cut", "unavailability"),
        ("fault cut", "longest_outage"),
    }
    broken = {(c.subject, c.metric) for c in compare(noisy, report_of(record(9, None), Path("r"))).regressions}
    assert {("sla recovers", "passed"), ("fault cut", "recovery")} <= broken


def test_a_baseline_needs_runs() -> None:
    with pytest.raises(ValueError, match="at least one run"):
        baseline([])


def test_labels_baselines_and_ages_parse_or_say_what_they_expected() -> None:
    assert parse_labels(["release=1.4", "git=abc=1", "note=", "release=1.5"]) == {
        "release": "1.5",
        "git": "abc=1",
        "note": "",
    }
    for bad in ("release", "=1.4", "a b=1"):
        with pytest.raises(ValueError, match="key=value"):
            parse_labels([bad])
    assert parse_baseline("history:last=10") == 10
    for bad in ("history:last=0", "history:last=x", "runs:last=3", "history"):
        with pytest.raises(ValueError, match="history:last=N"):
            parse_baseline(bad)
    now = T0
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("90m", now) == now - timedelta(minutes=90)
    assert parse_since("2026-11-30", now) == datetime(2026, 11, 30, tzinfo=UTC)
    assert parse_since("2026-11-30T12:00+01:00", now) == datetime(2026, 11, 30, 11, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="an age"):
        parse_since("last week", now)
