"""Writing the history: a finished run records itself, and `drillctl history import` indexes older runs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import structlog

from orchestrator.gameday.report import GAMEDAY_FILE
from orchestrator.gameday.report import SCHEMA as GAMEDAY_SCHEMA
from orchestrator.history.model import RunRecord
from orchestrator.history.store import HistoryStore, open_store, shown
from orchestrator.history.trends import record_of, record_of_gameday
from orchestrator.logs import log_to
from orchestrator.reporting.document import ReportFormatError, read_document
from orchestrator.reporting.json_report import read_report
from orchestrator.reporting.report import Report


def record_finished(report: Report, location: str) -> str | None:
    """Record a run whose reports are written. A failure is logged (drill.log.jsonl) and said on stderr, and
    returned; it never changes the run's verdict or exit code, so nothing escapes from here."""
    return _recorded(lambda: record_of(report), location, report.facts.run_dir / "drill.log.jsonl")


def record_gameday(document: Mapping[str, Any], folder: Path, location: str) -> str | None:
    """Record a game day whose reports are written (its gameday.json `document`, in `folder`), as an entry of its
    own beside its drills' runs; a failure as for a run (logged in the folder's gameday.log.jsonl), never
    changing its exit code."""
    return _recorded(lambda: record_of_gameday(document, folder), location, folder / "gameday.log.jsonl")


def _recorded(entry: Callable[[], RunRecord], location: str, log: Path) -> str | None:
    try:
        store = open_store(location)
        try:
            store.record([entry()])
        finally:
            store.close()
    except Exception as e:  # whatever it is (a locked or foreign file, a server down, a bug), the run stands
        error = shown(f"{type(e).__name__}: {e}")
        problem = f"history not recorded in {shown(location)}: {error}"
        with log.open("a", encoding="utf-8") as log_file:
            log_to(log_file)
            structlog.get_logger().warning("history_not_recorded", location=location, error=error)
        click.echo(f"warning: {problem}", err=True)
        return problem
    return None


REPORT_FILE = "report.json"


@dataclass(frozen=True)
class Imported:
    recorded: list[str]
    known: list[str]
    """Ids the history held already."""
    skipped: list[tuple[Path, str]]
    """Each report.json or gameday.json that is not drillctl's (or, for a game day, not finished), and why."""
    gamedays: set[str] = field(default_factory=set)
    """Which of those ids are game days' (the others are drills' runs)."""


def import_runs(folder: Path, store: HistoryStore) -> Imported:
    """Every `report.json` (a drill's run) and every `gameday.json` (a game day, with its drills' statuses and
    run ids) below `folder` into the store, in one transaction; ids already there are left alone (importing
    twice records nothing new), and a file that is not drillctl's is skipped."""
    records: list[RunRecord] = []
    skipped: list[tuple[Path, str]] = []
    for path in sorted(folder.rglob("*.json")):
        if path.name not in (REPORT_FILE, GAMEDAY_FILE) or not path.is_file():
            continue
        try:
            records.append(record_of(read_report(path)) if path.name == REPORT_FILE else _gameday(path))
        except ReportFormatError as e:
            skipped.append((path, str(e).replace(str(path), "it")))  # the caller names the file once
    recorded = store.record(records)
    new = set(recorded)
    gamedays = {r.run_id for r in records if r.kind == "gameday"}
    return Imported(recorded, [r.run_id for r in records if r.run_id not in new], skipped, gamedays)


def _gameday(path: Path) -> RunRecord:
    """A game day's entry from its gameday.json, which must be a finished game day's, as drillctl writes it."""
    document = read_document(path)
    found = document.get("schema") if isinstance(document, dict) else None
    if found != GAMEDAY_SCHEMA:
        raise ReportFormatError(f"not a {GAMEDAY_SCHEMA} game-day report (schema: {found!r})")
    try:
        return record_of_gameday(document, path.parent)
    except ValueError as e:
        raise ReportFormatError(f"malformed {GAMEDAY_SCHEMA} game-day report: {e}") from e
