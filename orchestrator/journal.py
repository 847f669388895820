"""Append-only, fsynced JSON lines of undo records and their outcomes.

Written before a fault touches anything, so that whatever kills the orchestrator,
what was (maybe) injected can be found and reverted from this file alone.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from orchestrator.errors import DrillError
from orchestrator.limits import JOURNAL_BYTES, JOURNAL_ENTRIES, JOURNAL_LINE_BYTES, LimitExceeded
from orchestrator.model.undo import Undo

Event = Literal["prepared", "injected", "reverted", "revert_failed"]
JOURNAL = "journal.jsonl"
"""The journal's name in a run directory."""


class JournalBusy(DrillError):
    """Another live process holds the journal: its run is still going, or being recovered."""


class Journal:
    """Held with an exclusive lock while open, so a live run's journal is never recovered under it."""

    def __init__(self, path: Path, lock: bool = True) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        if not lock:
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            os.close(self._fd)
            raise JournalBusy(f"{path} is held by a live drillctl process") from e

    @classmethod
    def beside_holder(cls, path: Path) -> Journal:
        """For the run's own watchdog, which reverts a fault past its lifetime while the (hung) run holds the lock.

        Each entry is one `write` on an O_APPEND descriptor, so its lines and the run's never interleave.
        """
        return cls(path, lock=False)

    def record(self, event: Event, undo: Undo, error: str | None = None, by: str | None = None) -> None:
        entry: dict[str, Any] = {"event": event, "wall": time.time(), **undo.to_json()}
        if error is not None:
            entry["error"] = error
        if by is not None:
            entry["by"] = by
        os.write(self._fd, (json.dumps(entry, sort_keys=True) + "\n").encode())
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)


def is_held(path: Path) -> bool:
    """Whether a live process has the journal open (its run is going on, or being recovered)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


class JournalUnreadable(DrillError):
    """A journal line is whole JSON but no undo record: the file is not one drillctl wrote."""


def read_entries(path: Path) -> Iterator[dict[str, Any]]:
    """Every complete line; a torn line (killed mid-write) is skipped.

    Read within JOURNAL_BYTES, JOURNAL_LINE_BYTES and JOURNAL_ENTRIES: a journal over one raises
    LimitExceeded naming the file (and line), rather than reading on or dropping undo records.
    """
    line_limit = JOURNAL_LINE_BYTES.value
    with path.open("rb") as f:
        JOURNAL_BYTES.check(os.fstat(f.fileno()).st_size, str(path))
        number = 0
        while line := f.readline(line_limit + 1):
            number += 1
            if len(line) > line_limit and not line.endswith(b"\n"):
                raise LimitExceeded(JOURNAL_LINE_BYTES, f"{path}:{number}")
            JOURNAL_ENTRIES.check(number, f"{path}:{number}")
            try:
                entry = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if not isinstance(entry, dict) or not _is_record(entry):
                raise JournalUnreadable(f"{path}:{number}: not an undo record of drillctl")
            yield entry


def _is_record(entry: dict[str, Any]) -> bool:
    return (
        isinstance(entry.get("event"), str)
        and isinstance(entry.get("driver"), str)
        and isinstance(entry.get("step_id"), str)
        and isinstance(entry.get("state"), dict)
    )


def pending(path: Path) -> list[Undo]:
    """Undo records prepared but not yet reverted, in the order they were prepared.

    A record that was prepared but never injected is pending too: the inject may have half
    happened before the crash, and reverts are idempotent.
    """
    open_steps: dict[str, Undo] = {}
    for entry in read_entries(path):
        undo = Undo.from_json(entry)
        if entry["event"] == "prepared":
            open_steps[undo.step_id] = undo
        elif entry["event"] == "reverted":
            open_steps.pop(undo.step_id, None)
    return list(open_steps.values())


def prepared(path: Path, step_id: str) -> Undo | None:
    """The undo record of one step, if it was prepared (reverted or not)."""
    found = None
    for entry in read_entries(path):
        if entry["event"] == "prepared" and entry["step_id"] == step_id:
            found = Undo.from_json(entry)
    return found
