"""The checker on hand-made histories: every finding kind, the RPO and write unavailability with their edges."""

from __future__ import annotations

import pytest

from orchestrator.model.findings import WorkloadResult
from orchestrator.model.operations import OperationLog
from orchestrator.workloads.checker import check
from tests.workloads.history import history


def checked(log: OperationLog, verified: bool = True) -> WorkloadResult:
    return check(log, "http", 10.0, verified)


def test_a_clean_history_has_no_finding() -> None:
    result = checked(
        history(
            ("write", "ok", 1, 0, 0.0, 0.01),
            ("read", "ok", 1, 0, 0.1, 0.01),
            ("write", "ok", 1, 2, 0.2, 0.01),
            ("verify", "ok", 1, 2, 1.0, 0.01),
        )
    )
    assert (result.lost, result.stale_reads, result.duplicates, result.foreign) == (0, 0, 0, 0)
    assert (result.failed_present, result.unknown_present, result.rpo) == (0, 0, 0.0)
    assert (result.writes, result.reads, result.acknowledged, result.keys_verified) == (2, 1, 2, 1)


def test_acknowledged_writes_missing_from_the_read_back_are_lost_and_span_the_rpo() -> None:
    result = checked(
        history(
            ("write", "ok", 1, 0, 0.0, 0.01),  # survives
            ("write", "ok", 2, 1, 0.1, 0.01),  # survives on key 2
            ("write", "ok", 1, 2, 0.2, 0.05),  # lost: key 1 holds write 0, acknowledged before it began
            ("write", "ok", 1, 3, 0.3, 0.02),  # lost too
            ("write", "fail", 1, 4, 0.4, 0.01),  # never acknowledged: not lost
            ("verify", "ok", 1, 0, 1.0, 0.01),
            ("verify", "ok", 2, 1, 1.0, 0.01),
        )
    )
    assert result.lost == 2
    assert result.rpo_from == pytest.approx(0.2) and result.rpo_to == pytest.approx(0.32)
    assert result.rpo == pytest.approx(0.12)
    assert result.rpo_resolution == pytest.approx(0.1)  # writes 0.1 s apart around both edges
    assert [e.value for e in result.examples if e.finding == "lost"] == [2, 3]


def test_a_key_that_holds_nothing_lost_all_its_acknowledged_writes() -> None:
    result = checked(history(("write", "ok", 1, 0, 0.0, 0.01), ("verify", "ok", 1, -1, 1.0, 0.01)))
    assert result.lost == 1


def test_a_write_overwritten_by_a_concurrent_or_later_one_is_not_lost() -> None:
    result = checked(
        history(
            ("write", "ok", 1, 0, 0.0, 0.5),  # acknowledged at 0.5
            ("write", "ok", 1, 1, 0.2, 0.1),  # began before write 0 was acknowledged: concurrent
            ("write", "unknown", 1, 2, 0.3, 1.0),  # may have been applied any time after 0.3
            ("verify", "ok", 1, 1, 2.0, 0.01),
        )
    )
    assert result.lost == 0
    later_unknown = (("write", "ok", 1, 0, 0.0, 0.01), ("write", "unknown", 1, 1, 0.5, 1.0))
    only_unknown = checked(history(*later_unknown, ("verify", "ok", 1, 1, 2.0, 0.0)))
    assert only_unknown.lost == 0 and only_unknown.unknown_present == 1


def test_writes_reported_failed_or_unknown_that_are_present_anyway() -> None:
    result = checked(
        history(
            ("write", "fail", 1, 0, 0.0, 0.01),
            ("write", "unknown", 2, 1, 0.0, 1.0),
            ("write", "unknown", 3, 2, 0.0, 1.0),  # not present: nothing to report
            ("read", "ok", 1, 0, 0.5, 0.01),
            ("verify", "ok", 2, 1, 2.0, 0.01),
            ("verify", "ok", 3, -1, 2.0, 0.01),
        )
    )
    assert (result.failed_present, result.unknown_present, result.lost) == (1, 1, 0)


def test_a_value_read_back_twice_is_a_duplicate() -> None:
    result = checked(
        history(
            ("write", "ok", 1, 0, 0.0, 0.01),
            ("verify", "ok", 1, 0, 1.0, 0.01),
            ("more", "ok", 1, 0, 1.0, 0.01),  # the key holds the same write twice
        )
    )
    assert result.duplicates == 1 and result.lost == 0


def test_a_value_at_the_wrong_key_or_never_written_is_foreign() -> None:
    result = checked(
        history(
            ("write", "ok", 1, 0, 0.0, 0.01),
            ("read", "ok", 2, 0, 0.5, 0.01),  # write 0 went to key 1
            ("read", "ok", 2, -2, 0.6, 0.01),
            ("verify", "ok", 1, 0, 1.0, 0.01),
        )
    )
    assert result.foreign == 2


def test_a_read_that_misses_a_write_acknowledged_before_it_began_is_stale() -> None:
    result = checked(
        history(
            ("write", "ok", 1, 0, 0.0, 0.01),
            ("write", "ok", 1, 1, 0.1, 0.01),  # acknowledged at 0.11
            ("read", "ok", 1, 0, 0.2, 0.01),  # stale: write 0 precedes write 1, which was acknowledged before
            ("read", "ok", 1, 0, 0.105, 0.01),  # began before write 1 was acknowledged: fine
            ("read", "ok", 1, 1, 0.3, 0.01),
            ("read", "ok", 2, -1, 0.3, 0.01),  # key 2 was never written: nothing to miss
            ("read", "fail", 1, -3, 0.3, 0.01),  # a failed read says nothing
            ("verify", "ok", 1, 1, 1.0, 0.01),
        )
    )
    assert result.stale_reads == 1
    (example,) = [e for e in result.examples if e.finding == "stale_read"]
    assert example.at == pytest.approx(0.2)


def test_a_read_of_nothing_after_an_acknowledged_write_is_stale() -> None:
    result = checked(
        history(("write", "ok", 1, 0, 0.0, 0.01), ("read", "ok", 1, -1, 0.5, 0.01), ("verify", "ok", 1, 0, 1.0, 0.0))
    )
    assert result.stale_reads == 1


def test_write_unavailability_runs_from_the_first_unacknowledged_write_to_the_next_acknowledged() -> None:
    result = checked(
        history(
            ("write", "ok", 1, 0, 0.0, 0.01),
            ("write", "fail", 1, 1, 0.1, None),  # never started
            ("write", "unknown", 1, 2, 0.2, 1.0),
            ("write", "ok", 1, 3, 0.3, 0.01),
            ("write", "fail", 1, 4, 0.4, 0.01),
            ("write", "ok", 1, 5, 0.5, 0.01),
            ("read", "fail", 1, -3, 0.55, 0.01),  # reads do not count
            ("verify", "ok", 1, 5, 1.0, 0.01),
        )
    )
    assert result.write_unavailable == pytest.approx(0.2)
    assert result.write_unavailable_from == pytest.approx(0.1) and result.write_unavailable_to == pytest.approx(0.3)
    assert result.write_unavailable_total == pytest.approx(0.3)
    assert result.write_unavailable_resolution == pytest.approx(0.1)


def test_keys_whose_read_back_failed_are_unverified_and_lose_nothing() -> None:
    result = checked(history(("write", "ok", 1, 0, 0.0, 0.01), ("verify", "fail", 1, -3, 1.0, 1.0)))
    assert (result.lost, result.keys_unverified, result.keys_verified) == (0, 1, 0)


def test_latency_percentiles_per_phase_and_kind_count_from_the_intended_start() -> None:
    log = history(*[("write", "ok", 1, k, k * 0.01, (k + 1) * 0.001) for k in range(100)])
    (stats,) = checked(log).stats
    assert (stats.operation, stats.phase, stats.operations, stats.ok) == ("write", "fault", 100, 100)
    assert stats.p50 == pytest.approx(0.050) and stats.p99 == pytest.approx(0.099) and stats.max == pytest.approx(0.1)
