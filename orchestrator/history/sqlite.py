"""The embedded history: one SQLite file, safe for runs that finish at the same moment and for killed writers.

WAL mode lets readers go on while a run writes; every write is one `BEGIN IMMEDIATE` transaction (the write
lock taken up front, so two writers queue on the busy timeout instead of failing on a lock upgrade), and
SQLite's journal makes a writer killed mid-transaction leave nothing behind. Times are ISO 8601 text in UTC,
which sorts as time does. The tables, writes and queries are `sql.py`'s, shared with PostgreSQL.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from orchestrator.history.sql import Cursor, Dialect, SqlStore
from orchestrator.history.store import HistoryError

BUSY_TIMEOUT = 30.0
"""Seconds a writer waits for another's transaction (each takes milliseconds) before giving up."""


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


SQLITE = Dialect(
    key="INTEGER PRIMARY KEY",
    ref="INTEGER",
    real="REAL",
    time="TEXT",
    blob="BLOB",
    time_in=_utc,
    time_out=datetime.fromisoformat,
)


class SqliteStore(SqlStore):
    """A `HistoryStore` in one SQLite file (created with its schema on first use)."""

    dialect = SQLITE
    kind = "an SQLite file"

    def __init__(self, path: Path, timeout: float = BUSY_TIMEOUT) -> None:
        self.path = path
        self.name = str(path)
        if path.is_dir():
            raise HistoryError(f"{path} is a folder, not a history file")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        try:
            self._wal(time.monotonic() + timeout)
            self._db.execute("PRAGMA foreign_keys = ON")
            self._check_schema()
        except sqlite3.DatabaseError as e:
            self._db.close()
            raise HistoryError(f"{path} is not a usable SQLite history: {e}") from e
        except HistoryError:
            self._db.close()
            raise

    def _wal(self, deadline: float) -> None:
        """WAL mode, which the file keeps once set. Two connections switching a new file at once can get "database
        is locked" at once, without the busy timeout (SQLite refuses to wait where waiting could deadlock): the
        loser tries again, briefly, until the deadline, and then finds the file in WAL mode already."""
        pause = 0.005
        while True:
            try:
                self._db.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause + random.uniform(0, pause))
            pause = min(pause * 2, 0.2)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Cursor]:
        """`BEGIN IMMEDIATE`: the write lock taken up front, so two writers queue on the busy timeout instead
        of one failing on a lock upgrade."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db.cursor()
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Cursor]:
        """A read transaction: every query in it sees the same committed state (WAL lets writers go on)."""
        self._db.execute("BEGIN")
        try:
            yield self._db.cursor()
        finally:
            self._db.execute("COMMIT")

    def _lock_schema(self, cur: Cursor) -> None:
        """Nothing to take: `BEGIN IMMEDIATE` holds the file's only write lock already."""

    def _tables(self, cur: Cursor) -> set[str]:
        return {row[0] for row in cur.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
