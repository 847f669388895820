"""Clock skew on a local process started under libfaketime: its offset file is rewritten.

Only that process's view of the wall clock moves (and CLOCK_MONOTONIC with `fake_monotonic`);
the host clock is never touched. docs/faults/clock-skew.md has what libfaketime really does.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from orchestrator.errors import PreflightError
from orchestrator.model.durations import format_duration
from orchestrator.model.spec import ClockSkewFault
from orchestrator.model.undo import Undo
from orchestrator.targets import faketime
from orchestrator.targets.local import LocalFleet, SupervisedProcess


class ClockSkewDriver:
    name = "local.clock_skew"

    def __init__(self, fleet: LocalFleet) -> None:
        self._fleet = fleet

    def _process(self, spec: ClockSkewFault) -> SupervisedProcess:
        proc = self._fleet.processes.get(spec.local_target)
        if proc is None:
            raise PreflightError(f"clock.skew {spec.name}: no local process named {spec.local_target!r}")
        return proc

    async def preflight(self, spec: ClockSkewFault) -> None:
        proc = self._process(spec)
        if proc.offset_file is None:
            raise PreflightError(
                f"clock.skew {spec.name}: process {spec.local_target} was not started under libfaketime "
                "(clock: faketime)"
            )
        faketime.find_library()
        if "FAKETIME" in {**os.environ, **proc.spec.env}:
            raise PreflightError(
                f"clock.skew {spec.name}: FAKETIME is set in the environment of {spec.local_target}; libfaketime would "
                "ignore the offset file drillctl rewrites"
            )

    async def prepare(self, spec: ClockSkewFault, step_id: str) -> Undo:
        proc = self._process(spec)
        if proc.offset_file is None:
            raise PreflightError(f"process {spec.local_target} has no faketime offset file")
        return Undo(
            self.name,
            step_id,
            {
                "process": spec.local_target,
                "file": str(proc.offset_file),
                "previous": faketime.read_offset(proc.offset_file),
                "sets_rate": spec.drift is not None,
            },
        )

    async def inject(self, spec: ClockSkewFault, undo: Undo) -> None:
        """Write the shift; with a drift, corrected for libfaketime counting the rate from process start."""
        previous: str = undo.state["previous"]
        rate = spec.drift if spec.drift is not None else (1.0 if faketime.has_rate(previous) else None)
        offset = spec.offset
        pid = self._fleet.processes[spec.local_target].pid
        if rate is not None and pid is not None:
            offset = faketime.clock_offset(offset, rate, faketime.process_origin(pid), time.time())
        faketime.write_offset(Path(undo.state["file"]), faketime.offset_line(offset, rate))

    async def revert(self, undo: Undo) -> None:
        """Write back what was there; end a rate we set explicitly, since libfaketime keeps the last one."""
        path = Path(undo.state["file"])
        if not path.parent.is_dir():
            return
        line: str = undo.state["previous"]
        if undo.state["sets_rate"] and not faketime.has_rate(line):
            line += faketime.REAL_RATE
        faketime.write_offset(path, line)

    def describe(self, spec: ClockSkewFault) -> str:
        proc = self._fleet.processes.get(spec.local_target)
        monotonic = "moves too" if proc is not None and proc.spec.fake_monotonic else "untouched"
        sign = "+" if spec.offset > 0 else "-"
        rate = f", running at x{spec.drift:g}" if spec.drift is not None else ""
        return (
            f"wall clock of process {spec.local_target} shifted by {sign}{format_duration(abs(spec.offset))}{rate} "
            f"through libfaketime (CLOCK_MONOTONIC {monotonic}), for {format_duration(spec.duration)}"
        )
