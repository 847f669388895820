"""The history store on both backends, a real SQLite file and a real PostgreSQL server: what goes in comes
back, queries, concurrent writers and a writer killed mid-transaction."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from orchestrator.history.model import SCHEMA_VERSION, GameDayDrill, RunQuery, RunRecord, SlaFigure
from orchestrator.history.sql import SqlStore
from orchestrator.history.sqlite import SqliteStore
from orchestrator.history.store import HistoryError, open_store
from tests.history.support import T0, record, series_of
from tests.support import ROOT


def _open(location: str) -> SqlStore:
    store = open_store(location)
    assert isinstance(store, SqlStore)
    return store


def _count(store: SqlStore, table: str) -> int:
    with store._snapshot() as cur:
        return int(cur.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def _intact(store: SqlStore) -> None:
    """SQLite's own check of the file (a PostgreSQL server keeps its files itself: the row counts are the check)."""
    if isinstance(store, SqliteStore):
        assert store._db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_runs_come_back_as_they_went_in_and_only_once(location: str) -> None:
    store = _open(location)
    runs = [record(2, 0.7, labels={"release": "1.4", "cluster": "staging"}), record(1, None), record(3, 0.4)]
    assert store.record(runs) == [r.run_id for r in runs]
    assert store.record(runs[:1]) == []  # a run id already there is left alone
    assert store.runs(RunQuery()) == sorted(runs, key=lambda r: r.started_at)
    store.close()
    again = _open(location)
    assert again.runs(RunQuery(last=1)) == [runs[2]]
    assert _count(again, "meta") == 2 and _count(again, "slas") == 3
    again.close()


def test_queries_filter_by_drill_time_labels_status_and_count(location: str) -> None:
    store = _open(location)
    staging, prod = {"cluster": "staging", "release": "1.4"}, {"cluster": "prod", "release": "1.4"}
    runs = [record(i, 0.5 if i % 3 else 2.5, labels=staging if i % 2 else prod) for i in range(12)]
    store.record([*runs, record(5, 0.5, drill="payments")])

    def ids(**query: object) -> list[int]:
        return [int(r.run_id.rsplit("-", 1)[1]) for r in store.runs(RunQuery(**query))]  # type: ignore[arg-type]

    assert ids(drill="orders") == list(range(12))
    assert ids(drill="payments") == [5]
    assert ids(drill="orders", since=T0 + timedelta(hours=9)) == [9, 10, 11]
    assert ids(drill="orders", before=T0 + timedelta(hours=2)) == [0, 1]
    assert ids(drill="orders", labels={"cluster": "staging"}) == [1, 3, 5, 7, 9, 11]
    assert ids(drill="orders", labels={"cluster": "staging", "release": "1.4"}) == [1, 3, 5, 7, 9, 11]
    assert ids(drill="orders", labels={"cluster": "staging", "release": "1.5"}) == []
    assert ids(drill="orders", status="failed") == [0, 3, 6, 9]
    assert ids(drill="orders", status="passed", exclude="orders-00011", last=3) == [7, 8, 10]
    assert ids(drill="orders", labels={"cluster": "prod"}, last=2) == [8, 10]
    store.close()


def test_series_are_the_runs_figures_as_columns(location: str) -> None:
    """The store's aggregation in SQL agrees with the plain reading of its records, whatever the query."""
    store = _open(location)
    runs = [record(i, None if i % 5 == 4 else 0.5 + i / 100, labels={"cluster": "ab"[i % 2]}) for i in range(15)]
    runs += [record(i, 0.3, drill="payments") for i in range(3, 6)]
    more = record(6, 0.3, drill="payments")  # a new SLA, first in its run, in another unit
    runs += [replace(more, slas=(SlaFigure("errors", "error_rate", "ratio", True, 0.01, 0.1, 0.09, None), *more.slas))]
    runs += [replace(record(20, 0.6), slas=(), run_id="orders-no-slas")]
    runs += [replace(record(21, 0.6), faults=(), run_id="orders-no-faults", labels={"cluster": "a", "git": "f00"})]
    twice = record(22, 0.7)  # as a hand-edited report.json might repeat a figure
    runs += [
        replace(twice, run_id="orders-twice", slas=twice.slas * 2, faults=(*twice.faults, record(22, 0.9).faults[0]))
    ]
    store.record(runs)
    queries = [
        RunQuery(),
        RunQuery(drill="orders"),
        RunQuery(labels={"cluster": "a"}),
        RunQuery(drill="orders", last=4),
        RunQuery(since=T0 + timedelta(hours=4), before=T0 + timedelta(hours=12)),
        RunQuery(drill="nothing"),
    ]
    for query in queries:
        assert store.series(query) == series_of(store.runs(query)), query
        assert store.series(query, with_labels=True) == series_of(store.runs(query), with_labels=True), query
    (orders, payments) = store.series(RunQuery())
    assert [(f.subject, f.metric) for f in orders.figures] == [
        ("sla recovers", "measured"),
        ("fault cut", "time_to_recover"),
        ("fault cut", "unavailability"),
    ]
    assert len(orders.run_ids) == 18 and payments.run_ids[0] == "payments-00003"
    assert [f.subject for f in payments.figures] == ["sla recovers", "sla errors", "fault cut", "fault cut"]
    assert payments.figures[1].unit == "ratio" and payments.figures[1].values == (None, None, None, 0.01)
    assert orders.run_ids[-3:] == ("orders-no-slas", "orders-no-faults", "orders-twice")
    assert orders.figures[0].values[-3:] == (None, 0.6, 0.7) and orders.figures[1].values[-3:] == (0.6, None, 0.9)
    assert orders.figures[1].values[4] is None  # never recovered
    store.close()


def test_packed_figures_that_do_not_match_their_layout_are_said_to_be_damaged(location: str) -> None:
    """Only a hand-edited or broken store gets here: its trends are refused with a reason, not misread."""
    store = _open(location)
    store.record([record(1, 0.5), record(2, 0.6)])
    with store._transaction() as cur:
        cur.execute("UPDATE runs SET trend = ? WHERE run_id = ?", (b"\0" * 12, "orders-00002"))
    with pytest.raises(HistoryError, match="do not match it: the history is damaged"):
        store.series(RunQuery())
    assert [r.run_id for r in store.runs(RunQuery())] == ["orders-00001", "orders-00002"]  # the records stand
    store.close()


def test_the_stamp_changes_with_every_run_recorded_and_only_then(location: str) -> None:
    store = _open(location)
    empty = store.stamp()
    store.record([record(1, 0.5)])
    one = store.stamp()
    assert one != empty
    store.record([record(1, 0.5)])  # known already: nothing changed
    assert store.stamp() == one
    other = _open(location)
    other.record([record(2, 0.5)])
    other.close()
    assert store.stamp() not in (empty, one)
    store.close()


def _writer(location: str, prefix: str, count: int, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.history.writer", location, prefix, str(count), *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])},
    )


def test_writers_started_together_on_a_new_store_all_land(location: str, tmp_path: Path) -> None:
    """Four processes create the same store and record 25 runs each, one transaction a run, at once."""
    go = tmp_path / "go"
    writers = [_writer(location, f"w{n}", 25, str(go)) for n in range(4)]
    time.sleep(1.5)  # every writer imported and waiting for the go file
    go.touch()
    for w in writers:
        _, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
    reader = _open(location)
    found = {r.run_id for r in reader.runs(RunQuery())}
    assert found == {f"w{n}-{i}" for n in range(4) for i in range(25)}
    assert _count(reader, "meta") == 2 and _count(reader, "slas") == 100 and _count(reader, "faults") == 100
    _intact(reader)
    reader.close()


def test_a_writer_killed_mid_transaction_leaves_no_partial_run(location: str) -> None:
    store = _open(location)
    store.record([record(1, 0.5)])
    writer = _writer(location, "killed", 3, "--hang")
    assert writer.stdout is not None
    assert writer.stdout.readline().strip() == "inside", writer.stderr.read() if writer.stderr else ""
    writer.send_signal(signal.SIGKILL)
    writer.communicate(timeout=30)

    ids = {r.run_id for r in store.runs(RunQuery())}
    assert ids == {"orders-00001", "killed-0", "killed-1"}  # killed-2 was never committed: none of its rows
    assert _count(store, "slas") == 3 and _count(store, "faults") == 3 and _count(store, "labels") == 0
    _intact(store)
    # nothing of the killed writer holds a lock: its very run id records at once
    assert store.record([replace(record(2, 0.5), run_id="killed-2")]) == ["killed-2"]
    store.close()


def _gameday(n: int, drills: tuple[GameDayDrill, ...]) -> RunRecord:
    passed = all(d.status == "passed" for d in drills)
    return replace(
        record(n, None),
        run_id=f"gameday-weekly-{n}",
        drill="weekly",
        kind="gameday",
        status="passed" if passed else "failed",
        verdict="PASS" if passed else "FAIL",
        labels={"release": "2.0"},
        slas=(),
        faults=(),
        drills=drills,
    )


def test_a_game_day_is_an_entry_of_its_own_beside_its_drills_runs(location: str) -> None:
    store = _open(location)
    runs = [record(1, 0.5), replace(record(2, 0.6), drill="weekly")]  # a drill named as the game day: no matter
    days = [
        _gameday(1, (GameDayDrill("orders", "passed", "orders-00001"), GameDayDrill("weekly", "passed", "weekly-2"))),
        _gameday(3, (GameDayDrill("orders", "failed", "orders-00003"), GameDayDrill("weekly", "skipped", None))),
    ]
    assert store.record([*runs, *days]) == [r.run_id for r in [*runs, *days]]
    assert store.runs(RunQuery(kind="gameday")) == days
    assert store.runs(RunQuery(kind="gameday", drill="weekly", last=1, labels={"release": "2.0"})) == days[1:]
    assert store.runs(RunQuery()) == runs  # trends and baselines read drills' runs only
    assert [d.drill for d in store.series(RunQuery())] == ["orders", "weekly"]
    assert [len(d.run_ids) for d in store.series(RunQuery())] == [1, 1]
    store.close()


def _as_version(store: SqlStore, version: int) -> None:
    """The store's schema taken back to what drillctl wrote at `version` (its runs kept)."""
    with store._transaction() as cur:
        cur.execute("ALTER TABLE runs DROP COLUMN trend")  # before trends were packed into runs
        cur.execute("ALTER TABLE runs DROP COLUMN trend_layout")
        cur.execute("DROP TABLE trend_layouts")
        if version == 1:  # before game days were entries
            cur.execute("DROP TABLE gameday_drills")
            cur.execute("DROP INDEX runs_by_kind")
            cur.execute("ALTER TABLE runs DROP COLUMN kind")
        cur.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))


@pytest.mark.parametrize("version", [1, 2])
def test_an_older_store_is_brought_up_to_date_with_its_runs_and_their_trends_kept(location: str, version: int) -> None:
    store = _open(location)
    twice = record(3, 0.9)
    runs = [
        record(1, 0.5, labels={"cluster": "a"}),
        record(2, None),
        replace(twice, slas=twice.slas * 2),
        replace(record(4, 0.6), slas=(), faults=()),
    ]
    store.record(runs)
    _as_version(store, version)
    store.close()

    again = _open(location)
    with again._snapshot() as cur:
        assert cur.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    assert again.runs(RunQuery()) == runs
    assert again.series(RunQuery()) == series_of(runs)
    later = record(5, 0.7)
    assert again.record([later]) == [later.run_id] and again.series(RunQuery()) == series_of([*runs, later])
    day = _gameday(6, (GameDayDrill("orders", "passed", "orders-00001"),))
    assert again.record([day]) == [day.run_id] and again.runs(RunQuery(kind="gameday")) == [day]
    again.close()
