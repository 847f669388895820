"""The history's SQL, shared by the SQLite and PostgreSQL stores: the logical schema, the writes and the queries.

Both backends run these very statements; a `Dialect` says what differs (column types, the parameter marker,
how a time goes in and comes out), and a backend subclass of `SqlStore` says how it connects, opens a write
transaction and a read snapshot, and lists its tables.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from orchestrator import __version__
from orchestrator.history.model import (
    SCHEMA_VERSION,
    TREND_FAULT_METRICS,
    DrillSeries,
    FaultFigure,
    GameDayDrill,
    RunQuery,
    RunRecord,
    Series,
    SlaFigure,
)
from orchestrator.history.store import HistoryError, no_history
from orchestrator.model.verdict import unit_of


class Cursor(Protocol):
    """What both drivers' cursors do (sqlite3's and psycopg's), with `?` as the parameter marker."""

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Cursor: ...
    def executemany(self, sql: str, params: Iterable[Sequence[Any]], /) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


@dataclass(frozen=True)
class Dialect:
    key: str
    """The type of `runs.id`, an integer the database numbers."""
    ref: str
    """The type of a column that refers to `runs.id`."""
    real: str
    time: str
    time_in: Callable[[datetime], Any]
    """A timezone-aware moment as the database keeps it (UTC)."""
    time_out: Callable[[Any], datetime]


MIGRATIONS: dict[int, tuple[str, ...]] = {
    2: (
        "ALTER TABLE runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'drill'",
        "CREATE INDEX runs_by_kind ON runs (kind, drill, started_at)",
        """CREATE TABLE gameday_drills (
        run {ref} NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        drill TEXT NOT NULL,
        status TEXT NOT NULL,
        drill_run TEXT,
        PRIMARY KEY (run, position))""",
    ),
}
"""What turns a store of the version before each key into that version (both backends run them as written).
Version 2: game days are entries of their own (`runs.kind`, indexed: `history` reads the few game days among
many runs), with each drill's status in `gameday_drills`."""

SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE runs (
        id {key},
        run_id TEXT NOT NULL UNIQUE,
        drill TEXT NOT NULL,
        started_at {time} NOT NULL,
        finished_at {time} NOT NULL,
        status TEXT NOT NULL,
        verdict TEXT NOT NULL,
        source TEXT,
        recorded_at {time} NOT NULL,
        kind TEXT NOT NULL DEFAULT 'drill')""",
    "CREATE INDEX runs_by_drill ON runs (drill, started_at)",
    "CREATE INDEX runs_by_time ON runs (started_at)",
    """CREATE TABLE labels (
        run {ref} NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (run, key))""",
    "CREATE INDEX labels_by_value ON labels (key, value)",
    """CREATE TABLE slas (
        run {ref} NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        name TEXT NOT NULL,
        type TEXT NOT NULL,
        unit TEXT NOT NULL,
        passed INTEGER NOT NULL,
        measured {real},
        threshold {real} NOT NULL,
        margin {real},
        resolution {real},
        PRIMARY KEY (run, position))""",
    """CREATE TABLE faults (
        run {ref} NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        fault TEXT NOT NULL,
        recovery TEXT NOT NULL,
        time_to_impact {real},
        time_to_recover {real},
        unavailability {real} NOT NULL,
        longest_outage {real} NOT NULL,
        resolution {real} NOT NULL,
        PRIMARY KEY (run, position))""",
    *MIGRATIONS[2][1:],
)
"""`runs.id` is the key the figures hang on (an integer joins faster than the run id's text); `run_id` is what
users name. Order is (started_at, id) everywhere: the drill index holds it, so reading a drill sorts nothing."""
TABLES = {"meta", "runs", "labels", "slas", "faults", "gameday_drills"}


def typed(dialect: Dialect, statements: Sequence[str]) -> list[str]:
    """Schema statements in the dialect's column types."""
    types = {"key": dialect.key, "ref": dialect.ref, "real": dialect.real, "time": dialect.time}
    return [statement.format_map(types) for statement in statements]


class SqlStore(ABC):
    """A `HistoryStore` over the logical schema; subclasses connect and say how transactions begin."""

    dialect: Dialect
    name: str
    """How messages name the store: a file path, a URL without its password."""
    kind: str
    """What the store is, for messages: `an SQLite file`, `a PostgreSQL database`."""

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[Cursor]:
        """A write transaction: committed when the block ends, rolled back if it raises."""

    @abstractmethod
    def _snapshot(self) -> AbstractContextManager[Cursor]:
        """A read transaction: every query in it sees the same committed state."""

    @abstractmethod
    def _tables(self, cur: Cursor) -> set[str]:
        """The tables that would stand in the schema's way (SQLite: every table of the file)."""

    @abstractmethod
    def _lock_schema(self, cur: Cursor) -> None:
        """Serialize the stores creating the schema at once, inside the write transaction."""

    def _check_schema(self, create: bool = True) -> None:
        """Create the schema where there is none (unless `create` is false: readers must not leave an empty
        history behind); refuse tables that are something else, or a newer schema. Only a store without a
        schema takes a write transaction: opening one to read never waits for writers."""
        with self._snapshot() as cur:
            tables = self._tables(cur)
        if not tables and not create:
            raise no_history(self.name)
        if "meta" not in tables:
            with self._transaction() as cur:
                self._lock_schema(cur)
                tables = self._tables(cur)  # again, under the lock: another process may have created it
                if not tables:
                    for statement in typed(self.dialect, SCHEMA):
                        cur.execute(statement)
                    cur.executemany(
                        "INSERT INTO meta (key, value) VALUES (?, ?)",
                        [("schema_version", str(SCHEMA_VERSION)), ("created_by", f"drillctl {__version__}")],
                    )
                elif "meta" not in tables:
                    found = ", ".join(sorted(tables))
                    raise HistoryError(f"{self.name} is {self.kind} but not a drillctl history (tables: {found})")
        with self._snapshot() as cur:
            version = _version(cur)
            tables = self._tables(cur)
        required = TABLES - {"gameday_drills"} if version == 1 else TABLES  # a version 1 store had no game days
        if version is None or not tables >= required:
            raise HistoryError(f"{self.name} is not a drillctl history (no schema version in its meta table)")
        if version > SCHEMA_VERSION:
            raise HistoryError(
                f"{self.name} has history schema {version}; this drillctl ({__version__}) reads up to {SCHEMA_VERSION}"
            )
        if version < SCHEMA_VERSION:
            self._migrate()

    def _migrate(self) -> None:
        """An older store brought to this schema, in one write transaction (the first opener does it, once)."""
        with self._transaction() as cur:
            self._lock_schema(cur)
            version = _version(cur) or SCHEMA_VERSION  # again, under the lock: another process may have done it
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in typed(self.dialect, MIGRATIONS[step]):
                    cur.execute(statement)
            cur.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))

    def record(self, runs: Sequence[RunRecord]) -> list[str]:
        """In run id order, so that two writers recording the same runs at once take their locks in the same
        order (on PostgreSQL, where writers do not queue for one lock, they cannot deadlock); then the new runs'
        figures, a statement per table for all of them (a round trip each on PostgreSQL, not one per run)."""
        keyed: list[tuple[int, RunRecord]] = []
        now = self.dialect.time_in(datetime.now(UTC))
        time_in = self.dialect.time_in
        with self._transaction() as cur:
            for run in sorted(runs, key=lambda r: r.run_id):
                inserted = cur.execute(
                    "INSERT INTO runs"
                    " (run_id, drill, started_at, finished_at, status, verdict, source, recorded_at, kind)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO NOTHING RETURNING id",
                    (
                        run.run_id,
                        run.drill,
                        time_in(run.started_at),
                        time_in(run.finished_at),
                        run.status,
                        run.verdict,
                        run.source,
                        now,
                        run.kind,
                    ),
                ).fetchone()
                if inserted is not None:
                    keyed.append((inserted[0], run))
            self._insert_figures(cur, keyed)
        recorded = {run.run_id for _, run in keyed}
        return list(dict.fromkeys(r.run_id for r in runs if r.run_id in recorded))

    def _insert_figures(self, cur: Cursor, keyed: Sequence[tuple[int, RunRecord]]) -> None:
        """Each run's labels, SLAs and faults (a game day's: its drills) under its key."""
        labels = [(key, k, v) for key, run in keyed for k, v in run.labels.items()]
        slas = [
            (key, i, s.name, s.type, s.unit, int(s.passed), s.measured, s.threshold, s.margin, s.resolution)
            for key, run in keyed
            for i, s in enumerate(run.slas)
        ]
        faults = [
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
            for key, run in keyed
            for i, f in enumerate(run.faults)
        ]
        drills = [(key, i, d.drill, d.status, d.run_id) for key, run in keyed for i, d in enumerate(run.drills)]
        for statement, rows in (
            ("INSERT INTO gameday_drills VALUES (?, ?, ?, ?, ?)", drills),
            ("INSERT INTO labels VALUES (?, ?, ?)", labels),
            ("INSERT INTO slas VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", slas),
            ("INSERT INTO faults VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", faults),
        ):
            if rows:
                cur.executemany(statement, rows)

    def runs(self, query: RunQuery) -> list[RunRecord]:
        """One read snapshot: the matching runs, then their figures."""
        where, params = self._where(query)
        order = " ORDER BY r.started_at, r.id"
        with self._snapshot() as cur:
            rows = cur.execute(
                f"SELECT r.id, r.run_id, r.drill, r.started_at, r.finished_at, r.status, r.verdict, r.source, r.kind"
                f" FROM runs r{where}{order}",
                params,
            ).fetchall()
            drills = _by_run(
                cur.execute(
                    "SELECT r.id, g.drill, g.status, g.drill_run"
                    f" {_joined('gameday_drills g', where)}{order}, g.position",
                    params,
                )
            )
            labels = _by_run(cur.execute(f"SELECT r.id, l.key, l.value {_joined('labels l', where)}", params))
            slas = _by_run(
                cur.execute(
                    "SELECT r.id, s.name, s.type, s.unit, s.passed, s.measured, s.threshold, s.margin, s.resolution"
                    f" {_joined('slas s', where)}{order}, s.position",
                    params,
                )
            )
            faults = _by_run(
                cur.execute(
                    "SELECT r.id, f.fault, f.recovery, f.time_to_impact, f.time_to_recover, f.unavailability,"
                    f" f.longest_outage, f.resolution {_joined('faults f', where)}{order}, f.position",
                    params,
                )
            )
        time_out = self.dialect.time_out
        return [
            RunRecord(
                run_id=run_id,
                drill=drill,
                started_at=time_out(started),
                finished_at=time_out(finished),
                status=status,
                verdict=verdict,
                labels=dict(labels.get(key, ())),
                slas=tuple(
                    SlaFigure(name, kind, unit_of(unit), bool(passed), *rest)
                    for name, kind, unit, passed, *rest in slas.get(key, ())
                ),
                faults=tuple(FaultFigure(*row) for row in faults.get(key, ())),
                source=source,
                kind="gameday" if kind == "gameday" else "drill",
                drills=tuple(GameDayDrill(*row) for row in drills.get(key, ())),
            )
            for key, run_id, drill, started, finished, status, verdict, source, kind in rows
        ]

    def series(self, query: RunQuery, with_labels: bool = False) -> list[DrillSeries]:
        """Per drill, its figures' names (two aggregates), then one ordered scan of its runs with a column per
        figure (NULL where a run has none): every column comes out of the database whole, nothing is built per
        run but, when asked for, its labels."""
        where, params = self._where(query)
        out = []
        with self._snapshot() as cur:
            drills = [d for (d,) in cur.execute(f"SELECT r.drill FROM runs r{where} GROUP BY r.drill", params)]
            for drill in drills:
                out.append(self._drill_series(cur, drill, f"{where} AND r.drill = ?", [*params, drill], with_labels))
        return sorted(out, key=lambda d: (d.started_at[0], d.drill))

    def _drill_series(self, cur: Cursor, drill: str, where: str, params: list[Any], with_labels: bool) -> DrillSeries:
        """The runs `where` chooses (all of `drill`), with each SLA's measured value, then each fault's trend
        figures, in the order they first appear. Each figures table is pivoted once, a column per name
        (`max(CASE ...)` grouped by run: one pass over the chosen runs' rows, where a subquery per run and figure
        costs PostgreSQL several times as much); a name a foreign report repeated in one run gives its largest
        value."""
        slas = cur.execute(
            f"SELECT s.name, min(s.unit) FROM runs r JOIN slas s ON s.run = r.id{where}"
            " GROUP BY s.name ORDER BY min(r.started_at), min(s.position)",
            params,
        ).fetchall()
        faults = [
            fault
            for (fault,) in cur.execute(
                f"SELECT f.fault FROM runs r JOIN faults f ON f.run = r.id{where}"
                " GROUP BY f.fault ORDER BY min(r.started_at), min(f.position)",
                params,
            )
        ]
        columns, joins, join_params = "", "", []
        if slas:
            pivot = ", ".join(f"max(CASE WHEN s.name = ? THEN s.measured END) AS v{i}" for i in range(len(slas)))
            columns += "".join(f", s.v{i}" for i in range(len(slas)))
            joins += f" LEFT JOIN (SELECT s.run, {pivot} {_joined('slas s', where)} GROUP BY s.run) s ON s.run = r.id"
            join_params += [*(name for name, _ in slas), *params]
        if faults:
            metrics = [(i, m) for i in range(len(faults)) for m in TREND_FAULT_METRICS]
            pivot = ", ".join(f"max(CASE WHEN f.fault = ? THEN f.{m} END) AS f{i}_{m}" for i, m in metrics)
            columns += "".join(f", f.f{i}_{m}" for i, m in metrics)
            joins += f" LEFT JOIN (SELECT f.run, {pivot} {_joined('faults f', where)} GROUP BY f.run) f ON f.run = r.id"
            join_params += [*(faults[i] for i, _ in metrics), *params]
        rows = cur.execute(
            f"SELECT r.id, r.run_id, r.started_at, r.status, r.verdict{columns}"
            f" FROM runs r{joins}{where} ORDER BY r.started_at, r.id",
            [*join_params, *params],
        ).fetchall()
        keys, ids, started, statuses, verdicts, *values = zip(*rows, strict=True)
        figures = [
            Series(f"sla {name}", "measured", unit_of(unit), column)
            for (name, unit), column in zip(slas, values, strict=False)
        ]
        fault_values = iter(values[len(slas) :])
        figures += [
            Series(f"fault {fault}", metric, "s", next(fault_values))
            for fault in faults
            for metric in TREND_FAULT_METRICS
        ]
        labels: tuple[dict[str, str], ...] = ()
        if with_labels:
            found = _by_run(cur.execute(f"SELECT r.id, l.key, l.value {_joined('labels l', where)}", params))
            labels = tuple(dict(found.get(key, ())) for key in keys)
        return DrillSeries(
            drill=drill,
            run_ids=ids,
            started_at=tuple(map(self.dialect.time_out, started)),
            statuses=statuses,
            verdicts=verdicts,
            figures=tuple(figures),
            labels=labels,
        )

    def _where(self, query: RunQuery) -> tuple[str, list[Any]]:
        """The query's conditions on `runs r`, as SQL with `?` parameters (`last`: among the newest that match)."""
        clauses: list[str] = ["r.kind = ?"]
        params: list[Any] = [query.kind]
        if query.drill is not None:
            clauses.append("r.drill = ?")
            params.append(query.drill)
        if query.since is not None:
            clauses.append("r.started_at >= ?")
            params.append(self.dialect.time_in(query.since))
        if query.before is not None:
            clauses.append("r.started_at < ?")
            params.append(self.dialect.time_in(query.before))
        if query.status is not None:
            clauses.append("r.status = ?")
            params.append(query.status)
        if query.exclude is not None:
            clauses.append("r.run_id != ?")
            params.append(query.exclude)
        for key, value in query.labels.items():
            clauses.append("EXISTS (SELECT 1 FROM labels l WHERE l.run = r.id AND l.key = ? AND l.value = ?)")
            params += [key, value]
        where = " WHERE " + " AND ".join(clauses)
        if query.last is None:
            return where, params
        newest = f"SELECT r.id FROM runs r{where} ORDER BY r.started_at DESC, r.id DESC LIMIT {int(query.last)}"
        return f" WHERE r.id IN ({newest})", params


def _version(cur: Cursor) -> int | None:
    row = cur.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row is not None and str(row[0]).isdigit() else None


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
