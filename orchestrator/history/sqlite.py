"""The embedded history: one SQLite file, safe for runs that finish at the same moment and for killed writers.

WAL mode lets readers go on while a run writes; every write is one `BEGIN IMMEDIATE` transaction (the write
lock taken up front, so two writers queue on the busy timeout instead of failing on a lock upgrade), and
SQLite's journal makes a writer killed mid-transaction leave nothing behind. Times are ISO 8601 text in UTC,
which sorts as time does; the tables are the logical schema any backend keeps.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator import __version__
from orchestrator.history.model import SCHEMA_VERSION, FaultFigure, RunQuery, RunRecord, SlaFigure
from orchestrator.history.store import HistoryError

BUSY_TIMEOUT = 30.0
"""Seconds a writer waits for another's transaction (each takes milliseconds) before giving up."""

SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        drill TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT NOT NULL,
        status TEXT NOT NULL,
        verdict TEXT NOT NULL,
        source TEXT,
        recorded_at TEXT NOT NULL)""",
    "CREATE INDEX runs_by_drill ON runs (drill, started_at)",
    """CREATE TABLE labels (
        run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (run_id, key))""",
    "CREATE INDEX labels_by_value ON labels (key, value)",
    """CREATE TABLE slas (
        run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        name TEXT NOT NULL,
        type TEXT NOT NULL,
        unit TEXT NOT NULL,
        passed INTEGER NOT NULL,
        measured REAL,
        threshold REAL NOT NULL,
        margin REAL,
        resolution REAL,
        PRIMARY KEY (run_id, position))""",
    """CREATE TABLE faults (
        run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        fault TEXT NOT NULL,
        recovery TEXT NOT NULL,
        time_to_impact REAL,
        time_to_recover REAL,
        unavailability REAL NOT NULL,
        longest_outage REAL NOT NULL,
        resolution REAL NOT NULL,
        PRIMARY KEY (run_id, position))""",
)
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
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO NOTHING",
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
                )
                if inserted.rowcount != 1:
                    continue
                self._insert_figures(db, run)
                recorded.append(run.run_id)
        return recorded

    def _insert_figures(self, db: sqlite3.Connection, run: RunRecord) -> None:
        db.executemany(
            "INSERT INTO labels (run_id, key, value) VALUES (?, ?, ?)",
            [(run.run_id, k, v) for k, v in run.labels.items()],
        )
        db.executemany(
            "INSERT INTO slas VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (run.run_id, i, s.name, s.type, s.unit, int(s.passed), s.measured, s.threshold, s.margin, s.resolution)
                for i, s in enumerate(run.slas)
            ],
        )
        db.executemany(
            "INSERT INTO faults VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    run.run_id,
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
        chosen = f"SELECT run_id FROM runs r{where} ORDER BY started_at DESC, run_id DESC"
        if query.last is not None:
            chosen += f" LIMIT {int(query.last)}"
        self._db.execute("BEGIN")
        try:
            rows = self._db.execute(
                "SELECT run_id, drill, started_at, finished_at, status, verdict, source FROM runs"
                f" WHERE run_id IN ({chosen}) ORDER BY started_at, run_id",
                params,
            ).fetchall()
            labels = self._children("SELECT run_id, key, value FROM labels", chosen, params, "key")
            slas = self._children(
                "SELECT run_id, name, type, unit, passed, measured, threshold, margin, resolution FROM slas",
                chosen,
                params,
                "position",
            )
            faults = self._children(
                "SELECT run_id, fault, recovery, time_to_impact, time_to_recover, unavailability, longest_outage,"
                " resolution FROM faults",
                chosen,
                params,
                "position",
            )
        finally:
            self._db.execute("COMMIT")
        return [
            RunRecord(
                run_id=run_id,
                drill=drill,
                started_at=datetime.fromisoformat(started),
                finished_at=datetime.fromisoformat(finished),
                status=status,
                verdict=verdict,
                labels={k: v for k, v in labels.get(run_id, ())},
                slas=tuple(
                    SlaFigure(name, kind, "ratio" if unit == "ratio" else "s", bool(passed), *rest)
                    for name, kind, unit, passed, *rest in slas.get(run_id, ())
                ),
                faults=tuple(FaultFigure(*row) for row in faults.get(run_id, ())),
                source=source,
            )
            for run_id, drill, started, finished, status, verdict, source in rows
        ]

    def _children(self, select: str, chosen: str, params: list[Any], order: str) -> dict[str, list[tuple[Any, ...]]]:
        """Rows of a figures table for the chosen runs, grouped by run id, without it."""
        grouped: dict[str, list[tuple[Any, ...]]] = {}
        for run_id, *rest in self._db.execute(f"{select} WHERE run_id IN ({chosen}) ORDER BY run_id, {order}", params):
            grouped.setdefault(run_id, []).append(tuple(rest))
        return grouped


def _where(query: RunQuery) -> tuple[str, list[Any]]:
    """The query's conditions on `runs r`, as SQL with `?` parameters."""
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
        clauses.append("EXISTS (SELECT 1 FROM labels l WHERE l.run_id = r.run_id AND l.key = ? AND l.value = ?)")
        params += [key, value]
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params
