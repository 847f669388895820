"""A process that writes hand-made runs into a history store, for the concurrency and SIGKILL tests.

    python -m tests.history.writer LOCATION PREFIX COUNT [GO_FILE] [--hang]

LOCATION is a file path (SQLite) or a postgresql:// URL. Waits for GO_FILE to exist (so that several writers
start together), then records COUNT runs, one transaction each. With --hang it prints `inside` in the middle
of the last transaction, after its rows are written and before its commit, and sleeps there until killed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from orchestrator.history.model import RunRecord
from orchestrator.history.sql import Cursor, SqlStore
from orchestrator.history.store import open_store
from tests.history.support import record


def main(argv: list[str]) -> None:
    location, prefix, count = argv[0], argv[1], int(argv[2])
    go = Path(argv[3]) if len(argv) > 3 and argv[3] != "--hang" else None
    hang = "--hang" in argv
    runs = [replace(record(i, 0.5 + i / 1000), run_id=f"{prefix}-{i}") for i in range(count)]
    while go is not None and not go.exists():
        time.sleep(0.001)
    store = open_store(location)  # after the go: the writers create a new store together
    assert isinstance(store, SqlStore)
    for run in runs[:-1] if hang else runs:
        store.record([run])
    if hang:
        _hang_inside(store, runs[-1])
    store.close()


def _hang_inside(store: SqlStore, run: RunRecord) -> None:
    """The store's own insert, then a stop before the commit that `record` would make next."""
    original = store._insert_figures

    def insert_then_hang(cur: Cursor, keyed: Sequence[tuple[int, RunRecord]]) -> None:
        original(cur, keyed)
        print("inside", flush=True)
        time.sleep(3600)

    store._insert_figures = insert_then_hang  # type: ignore[method-assign]
    store.record([run])


if __name__ == "__main__":
    main(sys.argv[1:])
