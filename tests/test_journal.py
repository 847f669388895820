"""The journal on a real file: fsynced lines, pending undo records, a torn last line."""

from __future__ import annotations

from pathlib import Path

from orchestrator.journal import Journal, JournalBusy, pending, read_entries
from orchestrator.model.undo import Undo


def test_pending_lists_prepared_but_not_reverted(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    a = Undo("toxiproxy.toxic", "run/a", {"url": "http://127.0.0.1:1", "proxy": "p", "toxic": "t"})
    b = Undo("toxiproxy.down", "run/b", {"url": "http://127.0.0.1:1", "proxy": "p", "was_enabled": True})
    journal.record("prepared", a)
    journal.record("injected", a)
    journal.record("prepared", b)
    journal.record("reverted", a)
    journal.close()
    assert pending(path) == [b]


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    a = Undo("toxiproxy.toxic", "run/a", {"proxy": "p"})
    journal.record("prepared", a)
    journal.close()
    with path.open("a") as f:
        f.write('{"event": "reverted", "driver": "toxiproxy.to')
    assert pending(path) == [a]


def test_the_watchdog_appends_beside_a_live_holder(tmp_path: Path) -> None:
    """The run holds the lock; its watchdog settles one step next to it, and both lines survive whole."""
    path = tmp_path / "journal.jsonl"
    run = Journal(path)
    a = Undo("toxiproxy.toxic", "run/a", {"proxy": "p"})
    b = Undo("toxiproxy.toxic", "run/b", {"proxy": "q"})
    run.record("prepared", a)
    run.record("prepared", b)
    try:
        Journal(path)
    except JournalBusy:
        pass
    else:
        raise AssertionError("a second holder must be refused while the run lives")
    beside = Journal.beside_holder(path)
    beside.record("reverted", a, by="watchdog: lifetime")
    beside.close()
    run.record("injected", b)
    run.close()
    assert pending(path) == [b]
    assert [e.get("by") for e in read_entries(path)] == [None, None, "watchdog: lifetime", None]
