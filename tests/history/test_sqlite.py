"""What is the SQLite history's own, on real files: WAL mode, and files that are not a history refused and left
alone (what both backends do is in test_store.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from orchestrator.history.model import SCHEMA_VERSION
from orchestrator.history.sqlite import SqliteStore
from orchestrator.history.store import HistoryError, open_store


def test_a_new_history_is_a_wal_file_with_its_schema_version(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "history.sqlite").close()
    with sqlite3.connect(tmp_path / "history.sqlite") as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


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
