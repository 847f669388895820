"""Hostile journals: real undo records mixed with torn lines, other JSON, random bytes and long lines.
`pending` must return records or refuse with a DrillError naming the journal, under a time and memory
budget; and a read that is not refused returns exactly the records pending in the whole lines (none lost)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.errors import DrillError
from orchestrator.journal import pending
from orchestrator.limits import JOURNAL_ENTRIES, JOURNAL_LINE_BYTES
from orchestrator.model.undo import Undo
from tests.budget import run_bounded
from tests.fuzzing import values

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

records = st.builds(
    lambda event, step, state: {"event": event, "driver": "toxiproxy.toxic", "step_id": step, "state": state},
    st.sampled_from(["prepared", "injected", "reverted", "revert_failed"]),
    st.sampled_from(["run/a", "run/b", "run/c"]),
    st.dictionaries(st.text(max_size=5), values, max_size=3),
)
lines = st.one_of(
    records.map(lambda r: json.dumps(r).encode()),
    records.map(lambda r: json.dumps(r).encode()[: len(json.dumps(r)) // 2]),  # torn
    values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200).map(lambda b: b.replace(b"\n", b"")),
    st.just(b"[" * 50_000),
    st.binary(min_size=250, max_size=400).map(lambda b: b.replace(b"\n", b"")),  # about the line bound below
)


def read(path: Path) -> Any:
    try:
        return [u.to_json() for u in pending(path)]
    except DrillError as e:
        assert str(path) in str(e)
        return "refused"


@FUZZ
@given(body=st.lists(lines, max_size=20), last_newline=st.booleans())
def test_a_hostile_journal_is_read_or_refused_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: list[bytes], last_newline: bool
) -> None:
    monkeypatch.setenv(JOURNAL_LINE_BYTES.env, "300")
    monkeypatch.setenv(JOURNAL_ENTRIES.env, "15")
    path = tmp_path / "journal.jsonl"
    path.write_bytes(b"\n".join(body) + (b"\n" if last_newline and body else b""))
    found = run_bounded(read, path, seconds=5, memory_mib=64)
    assert found.error is None, found.error
    if found.value != "refused":  # then every whole line was a record: the pending ones are all there
        expected: dict[str, dict[str, Any]] = {}
        for entry in (json.loads(line) for line in body if _record(line)):
            if entry["event"] == "prepared":
                expected[entry["step_id"]] = Undo.from_json(entry).to_json()
            elif entry["event"] == "reverted":
                expected.pop(entry["step_id"], None)
        assert found.value == list(expected.values())


def _record(line: bytes) -> bool:
    try:
        entry = json.loads(line)
    except (ValueError, RecursionError):
        return False
    return isinstance(entry, dict) and "step_id" in entry
