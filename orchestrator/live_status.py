"""live.json: what a running drill is doing, rewritten atomically at each phase, fault and stop, for `drillctl serve`.

The server reads what a run writes (this file, samples.bin, the control FIFO) and nothing else, so it never
touches the run's process: a server that hangs or dies costs the run nothing. A few rewrites a run (one per
event, never per sample), each a small write to a temporary file and a rename, so a reader sees the old state
or the new one, never half of either. A write that fails (disk full) is logged once and writing stops: the
run goes on.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from orchestrator.bounded_io import read_file
from orchestrator.engine import Observer
from orchestrator.files import replace_file
from orchestrator.limits import SPEC_FILE_BYTES, LimitExceeded
from orchestrator.loading import LoadedDrill
from orchestrator.logs import redact

FILE_NAME = "live.json"
SCHEMA = "drillctl.live/v1"
TIMED_PHASES = ("baseline", "fault", "recovery")
"""The phases a timeline marks; preflight and setup come before its t0."""


@dataclass
class LiveStatus:
    """An observer beside the console's: the engine's events, with when they happened, kept in live.json.

    `clock` is the engine's run time (seconds since t0), `t0` its CLOCK_MONOTONIC origin, which every process of
    the host shares: a reader dates a sample's landing as t0 + at + lag + latency.
    """

    run_dir: Path
    run_id: str
    drill: LoadedDrill
    started_at: datetime
    forward: Observer
    clock: Callable[[], float]
    t0: Callable[[], float]
    _phases: list[dict[str, Any]] = field(default_factory=list)
    _faults: dict[str, dict[str, Any]] = field(default_factory=dict)
    _stop: str | None = None
    _broken: bool = False

    def __post_init__(self) -> None:
        for fault in self.drill.spec.spec.faults:
            self._faults[fault.name] = {
                "type": fault.type,
                "state": "scheduled",
                "what": None,
                "injected_at": None,
                "reverted_at": None,
                "error": None,
            }
        self._sha256 = _sha256(self.drill.path)
        self._write("preflight")

    def event(self, kind: str, /, **fields: Any) -> None:
        self._note(kind, fields)
        self.forward.event(kind, **fields)

    def _note(self, kind: str, fields: dict[str, Any]) -> None:
        now = round(self.clock(), 6)
        name = str(fields.get("name", ""))
        if kind == "phase":
            self._phases.append({"name": name, "at": now if name in TIMED_PHASES else None})
        elif kind == "fault_injected" and name in self._faults:
            self._faults[name].update(state="injected", what=redact(str(fields.get("what", ""))), injected_at=now)
        elif kind == "fault_reverted" and name in self._faults:
            self._faults[name].update(state="reverted", reverted_at=now)
        elif kind == "revert_failed" and name in self._faults:
            self._faults[name].update(state="revert_failed", error=redact(str(fields.get("error", ""))))
        elif kind == "fault_left_in_place" and name in self._faults:
            self._faults[name].update(state="left_in_place")
        elif kind == "stop_requested":
            self._stop = redact(str(fields.get("reason", "")))
        else:
            return
        self._write(self._phases[-1]["name"] if self._phases else "preflight")

    def _write(self, phase: str) -> None:
        if self._broken:
            return
        document = {
            "schema": SCHEMA,
            "run_id": self.run_id,
            "drill": self.drill.spec.name,
            "drill_file": str(self.drill.path.resolve()),
            "drill_sha256": self._sha256,
            "pid": os.getpid(),
            "started_at": self.started_at.isoformat(),
            "t0_monotonic": self.t0(),
            "written_monotonic": time.monotonic(),
            "phase": phase,
            "phases": self._phases,
            "faults": self._faults,
            "stop": self._stop,
        }
        path = self.run_dir / FILE_NAME
        try:
            replace_file(path, json.dumps(document))
        except OSError as e:
            self._broken = True
            structlog.get_logger().warning("live_status_not_written", path=str(path), error=str(e))


def _sha256(path: Path) -> str | None:
    """Of the drill file as the run loaded it, so a reader that loads it again knows whether it still reads the
    same (None: it cannot be read now)."""
    try:
        return hashlib.sha256(read_file(path, SPEC_FILE_BYTES)).hexdigest()
    except (OSError, LimitExceeded):
        return None
