"""The embedded history: one SQLite file, safe for runs that finish at the same moment and for killed writers.

WAL mode lets readers go on while a run writes; every write is one `BEGIN IMMEDIATE` transaction (the write
lock taken up front, so two writers queue on the busy timeout instead of failing on a lock upgrade), and
SQLite's journal makes a writer killed mid-transaction leave nothing behind. Times are ISO 8601 text in UTC,
which sorts as time does; the tables are the logical schema any backend keeps.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator import __version__
from orchestrator.history.model import (
    SCHEMA_VERSION,
    TREND_FAULT_METRICS,
    DrillSeries,
    FaultFigure,
    RunQuery,
    RunRecord,
    Series,
    SlaFigure,
)
from orchestrator.history.store import HistoryError
from orchestrator.model.verdict import unit_of

BUSY_TIMEOUT = 30.0
"""Seconds a writer waits for another's transaction (each takes milliseconds) before giving up."""

SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL UNIQUE,
        drill TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT NOT NULL,
        status TEXT NOT NULL,
        verdict TEXT NOT NULL,
        source TEXT,
        recorded_at TEXT NOT NULL)""",
    "CREATE INDEX runs_by_drill ON runs (drill, started_at)",
    "CREATE INDEX runs_by_time ON runs (started_at)",
    """CREATE TABLE labels (
        run INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (run, key))""",
    "CREATE INDEX labels_by_value ON labels (key, value)",
    """CREATE TABLE slas (
        run INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        name TEXT NOT NULL,
        type TEXT NOT NULL,
        unit TEXT NOT NULL,
        passed INTEGER NOT NULL,
        measured REAL,
        threshold REAL NOT NULL,
        margin REAL,
        resolution REAL,
        PRIMARY KEY (run, position))""",
    """CREATE TABLE faults (
        run INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        fault TEXT NOT NULL,
        recovery TEXT NOT NULL,
        time_to_impact REAL,
        time_to_recover REAL,
        unavailability REAL NOT NULL,
        longest_outage REAL NOT NULL,
        resolution REAL NOT NULL,
        PRIMARY KEY (run, position))""",
)
"""`runs.id` is the key the figures hang on (an integer joins faster than the run id's text); `run_id` is what
users name. Order is (started_at, id) everywhere: the drill index holds it, so reading a drill sorts nothing."""
TABLES = {"meta", "runs", "labels", "slas", "faults"}


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


class SqliteStore:
    """A `HistoryStore` in one SQLite file (created with its schema on first use)."""

    def __init__(self, path: Path, timeout: float = BUSY_TIMEOUT) -> None:
        self.path = path
        if path.is_dir():
            raise HistoryError(f"{path} is a folder, not a history file")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        try:
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA foreign_keys = ON")
            self._check_schema()
        except sqlite3.DatabaseError as e:
            self._db.close()
            raise HistoryError(f"{path} is not a usable SQLite history: {e}") from e
        except HistoryError:
            self._db.close()
            raise

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _tables(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def _check_schema(self) -> None:
        """Create the schema in an empty file; refuse a file that holds something else or a newer schema."""
        if "meta" not in self._tables():
            with self._transaction() as db:
                tables = self._tables()  # again, under the write lock: another process may have created it
                if not tables:
                    for statement in SCHEMA:
                        db.execute(statement)
                    db.executemany(
                        "INSERT INTO meta (key, value) VALUES (?, ?)",
                        [("schema_version", str(SCHEMA_VERSION)), ("created_by", f"drillctl {__version__}")],
                    )
                elif "meta" not in tables:
                    found = ", ".join(sorted(tables))
                    raise HistoryError(f"{self.path} is an SQLite file but not a drillctl history (tables: {found})")
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(row[0]) if row is not None and str(row[0]).isdigit() else None
        if version is None or not self._tables() >= TABLES:
            raise HistoryError(f"{self.path} is not a drillctl history (no schema version in its meta table)")
        if version > SCHEMA_VERSION:
            raise HistoryError(
                f"{self.path} has history schema {version}; this drillctl ({__version__}) reads up to {SCHEMA_VERSION}"
            )

    def record(self, runs: Sequence[RunRecord]) -> list[str]:
        recorded: list[str] = []
        now = _utc(datetime.now(UTC))
        with self._transaction() as db:
            for run in runs:
                inserted = db.execute(
                    "INSERT INTO runs (run_id, drill, started_at, finished_at, status, verdict, source, recorded_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO NOTHING RETURNING id",
                    (
                        run.run_id,
                        run.drill,
                        _utc(run.started_at),
                        _utc(run.finished_at),
                        run.status,
                        run.verdict,
                        run.source,
                        now,
                    ),
                ).fetchone()
                if inserted is None:
                    continue
                self._insert_figures(db, inserted[0], run)
                recorded.append(run.run_id)
        return recorded

    def _insert_figures(self, db: sqlite3.Connection, key: int, run: RunRecord) -> None:
        db.executemany("INSERT INTO labels VALUES (?, ?, ?)", [(key, k, v) for k, v in run.labels.items()])
        db.executemany(
            "INSERT INTO slas VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (key, i, s.name, s.type, s.unit, int(s.passed), s.measured, s.threshold, s.margin, s.resolution)
                for i, s in enumerate(run.slas)
            ],
        )
        db.executemany(
            "INSERT INTO faults VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    key,
                    i,
                    f.fault,
                    f.recovery,
                    f.time_to_impact,
                    f.time_to_recover,
                    f.unavailability,
                    f.longest_outage,
                    f.resolution,
                )
                for i, f in enumerate(run.faults)
            ],
        )

    def runs(self, query: RunQuery) -> list[RunRecord]:
        """One read transaction (a consistent snapshot under WAL): the matching runs, then their figures."""
        where, params = _where(query)
        order = " ORDER BY r.started_at, r.id"
        with self._snapshot() as db:
            rows = db.execute(
                f"SELECT r.id, r.run_id, r.drill, r.started_at, r.finished_at, r.status, r.verdict, r.source"
                f" FROM runs r{where}{order}",
                params,
            ).fetchall()
            labels = _by_run(db.execute(f"SELECT r.id, l.key, l.value {_joined('labels l', where)}", params))
            slas = _by_run(
                db.execute(
                    "SELECT r.id, s.name, s.type, s.unit, s.passed, s.measured, s.threshold, s.margin, s.resolution"
                    f" {_joined('slas s', where)}{order}, s.position",
                    params,
                )
            )
            faults = _by_run(
                db.execute(
                    "SELECT r.id, f.fault, f.recovery, f.time_to_impact, f.time_to_recover, f.unavailability,"
                    f" f.longest_outage, f.resolution {_joined('faults f', where)}{order}, f.position",
                    params,
                )
            )
        return [
            RunRecord(
                run_id=run_id,
                drill=drill,
                started_at=datetime.fromisoformat(started),
                finished_at=datetime.fromisoformat(finished),
                status=status,
                verdict=verdict,
                labels=dict(labels.get(key, ())),
                slas=tuple(
                    SlaFigure(name, kind, unit_of(unit), bool(passed), *rest)
                    for name, kind, unit, passed, *rest in slas.get(key, ())
                ),
                faults=tuple(FaultFigure(*row) for row in faults.get(key, ())),
                source=source,
            )
            for key, run_id, drill, started, finished, status, verdict, source in rows
        ]

    def series(self, query: RunQuery) -> list[DrillSeries]:
        """Per drill, its figures' names (two aggregates), then one ordered scan of its runs with a column per
        figure (NULL where a run has none): every column comes out of SQLite whole, nothing is built per run."""
        where, params = _where(query)
        out = []
        with self._snapshot() as db:
            drills = [d for (d,) in db.execute(f"SELECT r.drill FROM runs r{where} GROUP BY r.drill", params)]
            for drill in drills:
                of_drill = f"{where} AND r.drill = ?" if where else " WHERE r.drill = ?"
                out.append(_drill_series(db, drill, of_drill, [*params, drill]))
        return sorted(out, key=lambda d: (d.started_at[0], d.drill))

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query in it sees the same committed state (WAL lets writers go on)."""
        self._db.execute("BEGIN")
        try:
            yield self._db
        finally:
            self._db.execute("COMMIT")


def _drill_series(db: sqlite3.Connection, drill: str, where: str, params: list[Any]) -> DrillSeries:
    """The runs `where` chooses (all of `drill`), with each SLA's measured value, then each fault's trend
    figures, in the order they first appear (one value a run, whatever a foreign report repeated)."""
    slas = db.execute(
        f"SELECT s.name, s.unit FROM runs r JOIN slas s ON s.run = r.id{where}"
        " GROUP BY s.name ORDER BY min(r.started_at), min(s.position)",
        params,
    ).fetchall()
    faults = [
        fault
        for (fault,) in db.execute(
            f"SELECT f.fault FROM runs r JOIN faults f ON f.run = r.id{where}"
            " GROUP BY f.fault ORDER BY min(r.started_at), min(f.position)",
            params,
        )
    ]
    sla_columns = "".join(", (SELECT s.measured FROM slas s WHERE s.run = r.id AND s.name = ? LIMIT 1)" for _ in slas)
    fault_columns = "".join(f", f{i}.{m}" for i in range(len(faults)) for m in TREND_FAULT_METRICS)
    fault_joins = "".join(
        f" LEFT JOIN faults f{i} ON f{i}.rowid = (SELECT rowid FROM faults WHERE run = r.id AND fault = ? LIMIT 1)"
        for i in range(len(faults))
    )
    rows = db.execute(
        f"SELECT r.run_id, r.started_at, r.status, r.verdict{sla_columns}{fault_columns}"
        f" FROM runs r{fault_joins}{where} ORDER BY r.started_at, r.id",
        [*(name for name, _ in slas), *faults, *params],
    ).fetchall()
    ids, started, statuses, verdicts, *values = zip(*rows, strict=True)
    figures = [
        Series(f"sla {name}", "measured", unit_of(unit), column)
        for (name, unit), column in zip(slas, values, strict=False)
    ]
    fault_values = iter(values[len(slas) :])
    figures += [
        Series(f"fault {fault}", metric, "s", next(fault_values)) for fault in faults for metric in TREND_FAULT_METRICS
    ]
    return DrillSeries(
        drill=drill,
        run_ids=ids,
        started_at=tuple(map(datetime.fromisoformat, started)),
        statuses=statuses,
        verdicts=verdicts,
        figures=tuple(figures),
    )


def _by_run(rows: Iterable[tuple[Any, ...]]) -> dict[int, list[tuple[Any, ...]]]:
    """Rows of a figures table grouped by their run's key, without it."""
    grouped: dict[int, list[tuple[Any, ...]]] = {}
    for key, *rest in rows:
        grouped.setdefault(key, []).append(tuple(rest))
    return grouped


def _joined(table: str, where: str) -> str:
    """`FROM` the chosen runs `r` and a figures table's rows of them."""
    alias = table.split()[1]
    return f"FROM runs r JOIN {table} ON {alias}.run = r.id{where}"


def _where(query: RunQuery) -> tuple[str, list[Any]]:
    """The query's conditions on `runs r`, as SQL with `?` parameters (`last`: among the newest that match)."""
    clauses: list[str] = []
    params: list[Any] = []
    if query.drill is not None:
        clauses.append("r.drill = ?")
        params.append(query.drill)
    if query.since is not None:
        clauses.append("r.started_at >= ?")
        params.append(_utc(query.since))
    if query.before is not None:
        clauses.append("r.started_at < ?")
        params.append(_utc(query.before))
    if query.status is not None:
        clauses.append("r.status = ?")
        params.append(query.status)
    if query.exclude is not None:
        clauses.append("r.run_id != ?")
        params.append(query.exclude)
    for key, value in query.labels.items():
        clauses.append("EXISTS (SELECT 1 FROM labels l WHERE l.run = r.id AND l.key = ? AND l.value = ?)")
        params += [key, value]
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    if query.last is None:
        return where, params
    newest = f"SELECT r.id FROM runs r{where} ORDER BY r.started_at DESC, r.id DESC LIMIT {int(query.last)}"
    return f" WHERE r.id IN ({newest})", params
