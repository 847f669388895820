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
from itertools import groupby
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
from orchestrator.history.packed import Figure, columns, layout_text, pack, trend_of, unpack_layout
from orchestrator.history.store import HistoryError, no_history
from orchestrator.model.units import unit_of


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
    """The type of `runs.id` (and `trend_layouts.id`), an integer the database numbers."""
    ref: str
    """The type of a column that refers to such a key."""
    real: str
    time: str
    blob: str
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
    3: (
        "CREATE TABLE trend_layouts (id {key}, figures TEXT NOT NULL)",
        "ALTER TABLE runs ADD COLUMN trend_layout {ref} REFERENCES trend_layouts (id)",
        "ALTER TABLE runs ADD COLUMN trend {blob}",
    ),
}
"""What turns a store of the version before each key into that version (both backends run them as written).
Version 2: game days are entries of their own (`runs.kind`, indexed: `history` reads the few game days among
many runs), with each drill's status in `gameday_drills`. Version 3: each run's trend figures packed into its
`runs` row (`packed.py`), filled in for the runs already there (`_pack_existing`)."""
PACKED_SINCE = 3

SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    MIGRATIONS[3][0],
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
        kind TEXT NOT NULL DEFAULT 'drill',
        trend_layout {ref} REFERENCES trend_layouts (id),
        trend {blob})""",
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
users name. Order is (started_at, id) everywhere: the drill index holds it, so reading a drill sorts nothing.
`trend_layouts` holds each distinct list of trend figures once (no unique index: PostgreSQL's would refuse a
long list, and two writers adding the same list at once only leave two equal rows, which read the same)."""
TABLES_SINCE = {"meta": 1, "runs": 1, "labels": 1, "slas": 1, "faults": 1, "gameday_drills": 2, "trend_layouts": 3}
"""Each table of the schema, and the version that added it."""
TABLES = set(TABLES_SINCE)
TREND_COLUMNS = ("r.run_id", "r.started_at", "r.status", "r.verdict", "r.trend_layout", "r.trend")
"""What `series` reads of each run."""


def typed(dialect: Dialect, statements: Sequence[str]) -> list[str]:
    """Schema statements in the dialect's column types."""
    types = {"key": dialect.key, "ref": dialect.ref, "real": dialect.real, "time": dialect.time, "blob": dialect.blob}
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
        required = {table for table, since in TABLES_SINCE.items() if since <= (version or 0)}
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
                if step == PACKED_SINCE:
                    self._pack_existing(cur)
            cur.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))

    def record(self, runs: Sequence[RunRecord]) -> list[str]:
        """In run id order, so that two writers recording the same runs at once take their locks in the same
        order (on PostgreSQL, where writers do not queue for one lock, they cannot deadlock); then the new runs'
        figures, a statement per table for all of them (a round trip each on PostgreSQL, not one per run). Each
        run's trend figures go into its `runs` row packed as well (`packed.py`)."""
        keyed: list[tuple[int, RunRecord]] = []
        now = self.dialect.time_in(datetime.now(UTC))
        time_in = self.dialect.time_in
        trends = {
            run.run_id: trend_of(
                ((s.name, s.unit, s.measured) for s in run.slas),
                ((f.fault, *(getattr(f, m) for m in TREND_FAULT_METRICS)) for f in run.faults),
            )
            for run in runs
        }
        with self._transaction() as cur:
            layouts = self._layout_keys(cur, [figures for figures, _ in trends.values()])
            for run in sorted(runs, key=lambda r: r.run_id):
                figures, values = trends[run.run_id]
                inserted = cur.execute(
                    "INSERT INTO runs (run_id, drill, started_at, finished_at, status, verdict, source, recorded_at,"
                    " kind, trend_layout, trend) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (run_id) DO NOTHING RETURNING id",
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
                        layouts.get(figures),
                        pack(values) if figures else None,
                    ),
                ).fetchone()
                if inserted is not None:
                    keyed.append((inserted[0], run))
            self._insert_figures(cur, keyed)
        recorded = {run.run_id for _, run in keyed}
        return list(dict.fromkeys(r.run_id for r in runs if r.run_id in recorded))

    def _layout_keys(self, cur: Cursor, layouts: Iterable[tuple[Figure, ...]]) -> dict[tuple[Figure, ...], int]:
        """The key of each (non-empty) layout, added where the store has none yet."""
        keys: dict[tuple[Figure, ...], int] = {}
        for figures in dict.fromkeys(f for f in layouts if f):
            text = layout_text(figures)
            key = cur.execute("SELECT min(id) FROM trend_layouts WHERE figures = ?", (text,)).fetchone()[0]
            if key is None:
                key = cur.execute("INSERT INTO trend_layouts (figures) VALUES (?) RETURNING id", (text,)).fetchone()[0]
            keys[figures] = key
        return keys

    def _pack_existing(self, cur: Cursor) -> None:
        """Runs recorded before version 3 get their packed trend figures, from their figures tables."""
        slas = _by_run(cur.execute("SELECT run, name, unit, measured FROM slas ORDER BY run, position"))
        metrics = ", ".join(TREND_FAULT_METRICS)
        faults = _by_run(cur.execute(f"SELECT run, fault, {metrics} FROM faults ORDER BY run, position"))
        trends = {key: trend_of(slas.get(key, ()), faults.get(key, ())) for key in sorted(slas.keys() | faults.keys())}
        layouts = self._layout_keys(cur, [figures for figures, _ in trends.values()])
        cur.executemany(
            "UPDATE runs SET trend_layout = ?, trend = ? WHERE id = ?",
            [(layouts[figures], pack(values), key) for key, (figures, values) in trends.items() if figures],
        )

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
        """One ordered scan of the matching runs with their packed trend figures, split by drill and turned into
        columns (`packed.columns`); the few layouts they use; their labels only when asked for. Nothing is read
        or built per run and figure, and a column only when it is needed: the run key for labels, the drill when
        the query names none (each costs about a tenth of the scan at 10,000 runs, bench/history.py)."""
        where, params = self._where(query)
        lead = [name for name, wanted in (("r.id", with_labels), ("r.drill", query.drill is None)) if wanted]
        with self._snapshot() as cur:
            rows = cur.execute(
                f"SELECT {', '.join([*lead, *TREND_COLUMNS])} FROM runs r{where} ORDER BY r.drill, r.started_at, r.id",
                params,
            ).fetchall()
            if not rows:
                return []
            table = list(zip(*rows, strict=True))
            keys = table.pop(0) if with_labels else ()
            drills = table.pop(0) if query.drill is None else None
            ids, started, statuses, verdicts, layout_keys, packed = table
            used = sorted(set(layout_keys) - {None})
            marks = ", ".join("?" * len(used))
            found = cur.execute(f"SELECT id, figures FROM trend_layouts WHERE id IN ({marks})", used) if used else ()
            layouts = {key: unpack_layout(text) for key, text in found}
            labels = {}
            if with_labels:
                labels = _by_run(cur.execute(f"SELECT r.id, l.key, l.value {_joined('labels l', where)}", params))
        spans = [(query.drill, slice(None))] if query.drill is not None else []
        start = 0
        for drill, same in groupby(drills or ()):
            end = start + len(list(same))
            spans.append((drill, slice(start, end)))
            start = end
        time_out = self.dialect.time_out
        out = [
            DrillSeries(
                drill=drill,
                run_ids=ids[span],
                started_at=tuple(map(time_out, started[span])),
                statuses=statuses[span],
                verdicts=verdicts[span],
                figures=tuple(
                    Series(subject, metric, unit_of(unit), values)
                    for (subject, metric, unit), values in columns(layouts, layout_keys[span], packed[span])
                ),
                labels=tuple(dict(labels.get(key, ())) for key in keys[span]) if with_labels else (),
            )
            for drill, span in spans
        ]
        return sorted(out, key=lambda d: (d.started_at[0], d.drill))

    def stamp(self) -> tuple[int, int]:
        """How many runs, and the newest one's key (which tells apart a run removed by hand and another recorded
        since). One count over an index: under a millisecond at 10,000 runs."""
        with self._snapshot() as cur:
            count, newest = cur.execute("SELECT count(*), max(id) FROM runs").fetchone()
        return int(count), int(newest or 0)

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
