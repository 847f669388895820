"""Append-only, fsynced JSON lines of undo records and their outcomes.

Written before a fault touches anything, so that whatever kills the orchestrator,
what was (maybe) injected can be found and reverted from this file alone.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from orchestrator.model.undo import Undo

Event = Literal["prepared", "injected", "reverted", "revert_failed"]


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def record(self, event: Event, undo: Undo, error: str | None = None) -> None:
        entry: dict[str, Any] = {"event": event, "wall": time.time(), **undo.to_json()}
        if error is not None:
            entry["error"] = error
        os.write(self._fd, (json.dumps(entry, sort_keys=True) + "\n").encode())
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)


def read_entries(path: Path) -> Iterator[dict[str, Any]]:
    """Every complete line; a torn last line (killed mid-write) is skipped."""
    with path.open(encoding="utf-8") as f:
        for line in f:
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def pending(path: Path) -> list[Undo]:
    """Undo records prepared but not yet reverted, in the order they were prepared."""
    open_steps: dict[str, Undo] = {}
    for entry in read_entries(path):
        undo = Undo.from_json(entry)
        if entry["event"] == "prepared":
            open_steps[undo.step_id] = undo
        elif entry["event"] == "reverted":
            open_steps.pop(undo.step_id, None)
    return list(open_steps.values())
