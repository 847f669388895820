"""The history store's interface, and which backend a location names.

Recording runs and querying them (as records, or as columns for trends) is all the commands need; both
backends (SQLite, the embedded default, and PostgreSQL, for a team's shared history) are `sql.SqlStore`s
over the same logical schema and statements.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from orchestrator.history.model import DrillSeries, RunQuery, RunRecord

HISTORY_FILE = "history.sqlite"
"""The embedded store's file in a runs folder: `<runs-dir>/history.sqlite`."""


class HistoryError(Exception):
    """The store cannot be opened or used: not a history, a newer schema, an unsupported location."""


class HistoryUnreachable(HistoryError):
    """The store's server cannot be reached, or stopped answering in time: as an unreachable backend (exit 3)."""


def no_history(name: str) -> HistoryError:
    return HistoryError(
        f"no history at {name}: every run records itself there, and `drillctl history import RUNS_DIR` indexes"
        " older runs"
    )


def shown(location: str) -> str:
    """A location as messages and output may show it: a URL's password (and any secret-looking query
    parameter) replaced by `***`."""
    from orchestrator.logs import redact  # not at start-up: only a URL has anything to redact

    return str(redact(location)) if "://" in location else location


class HistoryStore(Protocol):
    def record(self, runs: Sequence[RunRecord]) -> list[str]:
        """Record every run in one transaction; a run id already there is left as it is. Returns the ids
        newly recorded."""
        ...

    def runs(self, query: RunQuery) -> list[RunRecord]:
        """The runs that match, oldest first."""
        ...

    def series(self, query: RunQuery, with_labels: bool = False) -> list[DrillSeries]:
        """The same runs as columns per drill, with each figure's values (and each run's labels, if asked):
        what trends read, built without a record per run (the same data `runs` returns, grouped as
        `DrillSeries` says)."""
        ...

    def stamp(self) -> tuple[int, int]:
        """What changes whenever a run is recorded (runs are never removed): an answer read while the stamp was
        the same still holds (`drillctl serve` keeps its trend pages so)."""
        ...

    def close(self) -> None: ...


def location_of(history: str | None, runs_dir: Path) -> str:
    """`--history` as given, else the runs folder's embedded store."""
    return history if history else str(runs_dir / HISTORY_FILE)


def open_store(location: str, create: bool = True) -> HistoryStore:
    """The store at `location`: a `postgresql://` URL is a shared history on PostgreSQL; a file path (or
    `sqlite:///path`) is an SQLite history. Created if absent unless `create` is false (readers: asking must
    not leave an empty history behind)."""
    if location.startswith(("postgresql://", "postgres://")):
        from orchestrator.history.postgres import PostgresStore  # here: psycopg takes 130 ms to import

        return PostgresStore(location, create)
    from orchestrator.history.sqlite import SqliteStore

    path = Path(location.removeprefix("sqlite://"))
    if not create and not path.exists():
        raise no_history(str(path))
    return SqliteStore(path)
