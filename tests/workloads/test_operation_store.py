"""operations.bin: what the workload streams is what a reader gets back, and a torn last record is ignored."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from orchestrator.limits import OPERATIONS_FILE_BYTES, LimitExceeded
from orchestrator.model.operations import ABSENT, FAIL, MORE, OK, READ, UNKNOWN, VERIFY, WRITE, OperationLog
from orchestrator.operation_store import OperationStream, read_operations
from orchestrator.sample_store import SampleFileError

ROWS = [
    (WRITE, OK, "baseline", 7, 0, 0.0, 0.001234, 0.000012, None),
    (READ, OK, "fault", 7, 0, 0.01, 0.002, 0.0, None),
    (WRITE, FAIL, "fault", 3, 2, 0.02, math.nan, math.nan, "not started: 5 operations already in flight"),
    (WRITE, UNKNOWN, "fault", 3, 3, 0.03, 1.5, 0.0, "timeout after 1s"),
    (VERIFY, OK, "verify", 7, 0, 9.0, 0.003, 0.0, None),
    (MORE, OK, "verify", 7, ABSENT, 9.0, 0.003, 0.0, None),
]


def _log(log: OperationLog | None = None, stream: OperationStream | None = None) -> OperationLog:
    """ROWS appended one by one, each then told to `stream` as the workload tells it."""
    log = OperationLog() if log is None else log
    for kind, outcome, phase, key, value, at, latency, lag, error in ROWS:
        log.append(kind, outcome, log.phase_id(phase), key, value, at, latency, lag, log.error_id(error))
        if stream is not None:
            stream.landed()
    return log


def _columns(log: OperationLog) -> list[tuple[object, ...]]:
    return [
        (
            log.kind[i],
            log.outcome[i],
            log.phases[log.phase[i]],
            log.key[i],
            log.value[i],
            round(log.at[i], 6),
            None if math.isnan(log.latency[i]) else round(log.latency[i], 6),
            None if math.isnan(log.lag[i]) else round(log.lag[i], 6),
            log.errors[log.error[i]],
        )
        for i in range(len(log))
    ]


def test_every_record_comes_back_as_it_was_streamed(tmp_path: Path) -> None:
    log = OperationLog()
    stream = OperationStream(tmp_path / "operations.bin", log, batch=2)
    written = _log(log, stream)
    ref = stream.close()
    assert ref is not None and ref.operations == len(ROWS) and ref.bytes == (tmp_path / "operations.bin").stat().st_size
    assert _columns(read_operations(tmp_path / "operations.bin")) == _columns(written)


def test_a_torn_last_record_is_ignored_and_a_foreign_file_refused(tmp_path: Path) -> None:
    path = tmp_path / "operations.bin"
    stream = OperationStream(path, _log())
    assert stream.close() is not None
    whole = path.read_bytes()
    path.write_bytes(whole[:-10])  # killed mid-write
    assert len(read_operations(path)) == len(ROWS) - 1
    path.write_bytes(b"DRLSMPL\n" + whole[8:])
    with pytest.raises(SampleFileError, match="not a version 1 operations file"):
        read_operations(path)


def test_a_file_over_its_bound_is_refused_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "operations.bin"
    assert OperationStream(path, _log()).close() is not None
    monkeypatch.setenv(OPERATIONS_FILE_BYTES.env, "64")
    with pytest.raises(LimitExceeded, match="DRILLCTL_LIMIT_OPERATIONS_FILE_BYTES"):
        read_operations(path)
