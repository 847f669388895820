"""The SQLite history on real files: what goes in comes back, queries, schema checks, concurrent writers
and a writer killed mid-transaction."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from orchestrator.history.model import SCHEMA_VERSION, RunQuery
from orchestrator.history.sqlite import SqliteStore
from orchestrator.history.store import HistoryError, open_store
from tests.history.support import T0, record, series_of
from tests.support import ROOT


def test_runs_come_back_as_they_went_in_and_only_once(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "history.sqlite")
    runs = [record(2, 0.7, labels={"release": "1.4", "cluster": "staging"}), record(1, None), record(3, 0.4)]
    assert store.record(runs) == [r.run_id for r in runs]
    assert store.record(runs[:1]) == []  # a run id already there is left alone
    assert store.runs(RunQuery()) == sorted(runs, key=lambda r: r.started_at)
    store.close()
    with sqlite3.connect(tmp_path / "history.sqlite") as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_queries_filter_by_drill_time_labels_status_and_count(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "h.sqlite")
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


def test_series_are_the_runs_figures_as_columns(tmp_path: Path) -> None:
    """The store's aggregation in SQL agrees with the plain reading of its records, whatever the query."""
    store = SqliteStore(tmp_path / "h.sqlite")
    runs = [record(i, None if i % 5 == 4 else 0.5 + i / 100, labels={"cluster": "ab"[i % 2]}) for i in range(15)]
    runs += [record(i, 0.3, drill="payments") for i in range(3, 6)]
    runs += [replace(record(20, 0.6), slas=(), run_id="orders-no-slas")]
    runs += [replace(record(21, 0.6), faults=(), run_id="orders-no-faults", labels={"cluster": "a", "git": "f00"})]
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
    (orders, payments) = store.series(RunQuery())
    assert [(f.subject, f.metric) for f in orders.figures] == [
        ("sla recovers", "measured"),
        ("fault cut", "time_to_recover"),
        ("fault cut", "unavailability"),
    ]
    assert len(orders.run_ids) == 17 and payments.run_ids[0] == "payments-00003"
    assert orders.run_ids[-2:] == ("orders-no-slas", "orders-no-faults")
    assert orders.figures[0].values[-2:] == (None, 0.6) and orders.figures[1].values[-2:] == (0.6, None)
    assert orders.figures[1].values[4] is None  # never recovered


def test_files_that_are_no_history_are_refused_and_left_as_they_were(tmp_path: Path) -> None:
    text = tmp_path / "notes.sqlite"
    text.write_text("not a database, just notes\n" * 100)
    with pytest.raises(HistoryError, match="not a usable SQLite history"):
        SqliteStore(text)
    assert text.read_text().startswith("not a database")

    foreign = tmp_path / "other.sqlite"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(HistoryError, match=r"not a drillctl history \(tables: invoices\)"):
        SqliteStore(foreign)

    newer = tmp_path / "newer.sqlite"
    SqliteStore(newer).close()
    with sqlite3.connect(newer) as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(HistoryError, match=f"history schema {SCHEMA_VERSION + 1}"):
        SqliteStore(newer)

    with pytest.raises(HistoryError, match="a folder"):
        SqliteStore(tmp_path)
    with pytest.raises(HistoryError, match="no history at"):
        open_store(str(tmp_path / "absent.sqlite"), create=False)
    assert not (tmp_path / "absent.sqlite").exists()
    with pytest.raises(HistoryError, match="PostgreSQL"):
        open_store("postgresql://db.example/drills")


def _writer(store: Path, prefix: str, count: int, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.history.writer", str(store), prefix, str(count), *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])},
    )


def test_writers_started_together_on_a_new_store_all_land(tmp_path: Path) -> None:
    """Four processes create the same store and record 25 runs each, one transaction a run, at once."""
    store, go = tmp_path / "history.sqlite", tmp_path / "go"
    writers = [_writer(store, f"w{n}", 25, str(go)) for n in range(4)]
    time.sleep(1.0)  # every writer imported and waiting for the go file
    go.touch()
    for w in writers:
        _, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
    reader = SqliteStore(store)
    found = {r.run_id for r in reader.runs(RunQuery())}
    assert found == {f"w{n}-{i}" for n in range(4) for i in range(25)}
    assert reader._db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_writer_killed_mid_transaction_leaves_the_store_intact(tmp_path: Path) -> None:
    store = tmp_path / "history.sqlite"
    SqliteStore(store).record([record(1, 0.5)])
    writer = _writer(store, "killed", 3, "--hang")
    assert writer.stdout is not None
    assert writer.stdout.readline().strip() == "inside", writer.stderr.read() if writer.stderr else ""
    writer.send_signal(signal.SIGKILL)
    writer.communicate(timeout=30)

    after = SqliteStore(store, timeout=5.0)  # the killed writer's lock went with it
    assert after._db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    ids = {r.run_id for r in after.runs(RunQuery())}
    assert ids == {"orders-00001", "killed-0", "killed-1"}  # killed-2 was never committed: none of its rows
    assert after._db.execute("SELECT count(*) FROM slas").fetchone() == (3,)  # one per committed run: none of killed-2
    assert after.record([replace(record(9, 0.5), run_id="later")]) == ["later"]
