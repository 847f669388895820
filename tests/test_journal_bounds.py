"""Journals read within their bounds (bytes, line length, lines): just under is read, just over is refused
naming the journal (and line) and the variable that raises the bound; `drillctl recover` and the watchdog
say which journal could not be read and revert nothing from it, rather than dropping undo records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.journal import Journal, pending
from orchestrator.limits import JOURNAL_BYTES, JOURNAL_ENTRIES, JOURNAL_LINE_BYTES
from orchestrator.model.undo import Undo
from tests.bounds import bounded_said
from tests.support import ROOT, run


def step_ids(path: Path) -> list[str]:
    return [u.step_id for u in pending(path)]


def journal_of(tmp_path: Path, steps: int, state: dict[str, str] | None = None) -> Path:
    """`steps` prepared steps, each injected: 2 lines a step."""
    path = tmp_path / "run" / "journal.jsonl"
    journal = Journal(path)
    for k in range(steps):
        undo = Undo("toxiproxy.toxic", f"run/{k}", state or {"proxy": "p"})
        journal.record("prepared", undo)
        journal.record("injected", undo)
    journal.close()
    return path


def test_a_journal_just_under_its_size_bound_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = journal_of(tmp_path, 3)
    monkeypatch.setenv(JOURNAL_BYTES.env, str(path.stat().st_size))
    assert bounded_said(step_ids, path) == ["run/0", "run/1", "run/2"]


def test_a_journal_just_over_its_size_bound_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = journal_of(tmp_path, 3)
    monkeypatch.setenv(JOURNAL_BYTES.env, str(path.stat().st_size - 1))
    said = bounded_said(step_ids, path)
    assert said.startswith(f"refused: LimitExceeded: {path}: the journal is over the limit of")
    assert f"{JOURNAL_BYTES.env}=N" in said


def test_a_huge_journal_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with path.open("wb") as f:
        f.truncate(8 * 2**30)
    assert "the journal is over the limit of 67,108,864 bytes" in bounded_said(step_ids, path, seconds=1, memory_mib=8)


def test_a_line_just_under_its_bound_is_read_and_one_just_over_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = journal_of(tmp_path, 2, {"proxy": "p" * 1000})
    lengths = [len(line) for line in path.read_bytes().splitlines()]
    longest = max(lengths)
    first = lengths.index(longest) + 1
    monkeypatch.setenv(JOURNAL_LINE_BYTES.env, str(longest))
    assert bounded_said(step_ids, path) == ["run/0", "run/1"]
    monkeypatch.setenv(JOURNAL_LINE_BYTES.env, str(longest - 1))
    said = bounded_said(step_ids, path)
    assert said.startswith(
        f"refused: LimitExceeded: {path}:{first}: a journal line is over the limit of {longest - 1:,}"
    )


def test_a_line_without_end_costs_no_more_than_its_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """256 MiB without a newline (under the file bound, raised for it): read up to the line bound, then refused."""
    path = tmp_path / "journal.jsonl"
    with path.open("wb") as f:
        f.write(b'{"event": "prepared", "state": "')
        f.truncate(256 * 2**20)
    monkeypatch.setenv(JOURNAL_BYTES.env, str(2**30))
    said = bounded_said(step_ids, path, seconds=5, memory_mib=48)
    assert said.startswith(f"refused: LimitExceeded: {path}:1: a journal line is over the limit of 16,777,216")


def test_lines_just_under_their_bound_are_read_and_just_over_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = journal_of(tmp_path, 5)
    monkeypatch.setenv(JOURNAL_ENTRIES.env, "10")
    assert len(bounded_said(step_ids, path)) == 5
    monkeypatch.setenv(JOURNAL_ENTRIES.env, "9")
    said = bounded_said(step_ids, path)
    assert said.startswith(f"refused: LimitExceeded: {path}:10: the journal is over the limit of 9 lines")


def test_a_whole_line_that_is_no_undo_record_is_refused_not_skipped(tmp_path: Path) -> None:
    path = journal_of(tmp_path, 1)
    with path.open("a") as f:
        f.write('{"event": "reverted"}\n')
    assert bounded_said(step_ids, path) == f"refused: JournalUnreadable: {path}:3: not an undo record of drillctl"


def test_recover_names_the_journal_and_the_bound_and_reverts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = journal_of(tmp_path, 2)
    before = path.read_bytes()
    monkeypatch.setenv(JOURNAL_ENTRIES.env, "3")
    for args in (["recover", str(path.parent)], ["recover", "--runs-dir", str(tmp_path)]):
        result = run(*args, timeout=60)
        assert result.returncode == 1, result.stderr
        assert f"JOURNAL UNREADABLE, nothing reverted: {path}:4: the journal is over the limit of 3" in result.stdout
        assert f"{JOURNAL_ENTRIES.env}=N" in result.stdout and "Traceback" not in result.stderr
    document = json.loads(run("recover", str(path.parent), "--output", "json", timeout=60).stdout)
    assert document["journals"][0]["unreadable"].startswith(f"{path}:4: the journal is over the limit")
    assert path.read_bytes() == before  # nothing reverted, nothing recorded: the undo records are all there


def test_the_watchdog_reports_a_journal_it_cannot_read(tmp_path: Path) -> None:
    """The run is gone (its pipe closed without `done`); its journal is over a bound: watchdog.json says so."""
    path = journal_of(tmp_path, 2)
    dead = subprocess.Popen(["true"])
    dead.wait()
    env = {**os.environ, JOURNAL_ENTRIES.env: "3"}
    watchdog = subprocess.run(
        [sys.executable, "-m", "orchestrator.watchdog", str(path.parent), str(dead.pid)],
        input="",  # a pipe, closed at once: the run is lost
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    assert watchdog.returncode == 1, watchdog.stderr
    summary = json.loads((path.parent / "watchdog.json").read_text())
    assert summary["journal_unreadable"].startswith(f"{path}:4: the journal is over the limit of 3 lines")
    assert summary["reverted"] == [] and summary["revert_failed"] == []
