"""Clock skew on local processes started under libfaketime: their offset files are rewritten.

The target is a process or a node (every process of it: a machine's clock), each started with
`clock: faketime`; only their view of the wall clock moves (and CLOCK_MONOTONIC with `fake_monotonic`),
never the host's. An adopted process cannot be skewed: libfaketime is preloaded when a process starts,
and drillctl did not start it. docs/faults/clock-skew.md has what libfaketime really does.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from orchestrator.errors import PreflightError
from orchestrator.faults.base import Touched
from orchestrator.model.durations import format_duration
from orchestrator.model.spec import ClockSkewFault
from orchestrator.model.undo import Undo
from orchestrator.targets import faketime
from orchestrator.targets.local import LocalFleet, SupervisedProcess


def _clocks(state: Any) -> list[Any]:
    """The clocks an undo record moved; a record written before nodes could be skewed holds one at its top."""
    return list(state["clocks"]) if "clocks" in state else [state]


class ClockSkewDriver:
    name = "local.clock_skew"

    def __init__(self, fleet: LocalFleet) -> None:
        self._fleet = fleet

    def _processes(self, spec: ClockSkewFault) -> list[SupervisedProcess]:
        """The process, or every process of the node; PreflightError naming why when one cannot be skewed."""
        name = spec.local_target
        fleet = self._fleet
        if not fleet.declares(name):
            raise PreflightError(f"clock.skew {spec.name}: no local process or node named {name!r}")
        why = fleet.targets.unskewable(name)
        if why is not None:
            raise PreflightError(f"clock.skew {spec.name}: {why}")
        return fleet.members(name)

    async def preflight(self, spec: ClockSkewFault) -> None:
        processes = self._processes(spec)
        faketime.find_library()
        for proc in processes:
            if "FAKETIME" in {**os.environ, **proc.spec.env}:
                raise PreflightError(
                    f"clock.skew {spec.name}: FAKETIME is set in the environment of {proc.spec.name}; libfaketime "
                    "would ignore the offset file drillctl rewrites"
                )

    async def prepare(self, spec: ClockSkewFault, step_id: str) -> Undo:
        clocks = []
        for proc in self._processes(spec):
            if proc.offset_file is None:
                raise PreflightError(f"process {proc.spec.name} has no faketime offset file")
            previous = faketime.read_offset(proc.offset_file)
            clocks.append({"process": proc.spec.name, "file": str(proc.offset_file), "previous": previous})
        return Undo(
            self.name, step_id, {"target": spec.local_target, "clocks": clocks, "sets_rate": spec.drift is not None}
        )

    async def inject(self, spec: ClockSkewFault, undo: Undo) -> None:
        """Write the shift; with a drift, corrected for libfaketime counting the rate from process start."""
        for clock in _clocks(undo.state):
            previous: str = clock["previous"]
            rate = spec.drift if spec.drift is not None else (1.0 if faketime.has_rate(previous) else None)
            offset = spec.offset
            pid = self._fleet.processes[clock["process"]].pid
            if rate is not None and pid is not None:
                offset = faketime.clock_offset(offset, rate, faketime.process_origin(pid), time.time())
            faketime.write_offset(Path(clock["file"]), faketime.offset_line(offset, rate))

    async def revert(self, undo: Undo) -> None:
        """Write back what was there; end a rate we set explicitly, since libfaketime keeps the last one."""
        for clock in _clocks(undo.state):
            path = Path(clock["file"])
            if not path.parent.is_dir():
                continue
            line: str = clock["previous"]
            if undo.state["sets_rate"] and not faketime.has_rate(line):
                line += faketime.REAL_RATE
            faketime.write_offset(path, line)

    def touched(self, undo: Undo) -> Touched:
        return Touched(tuple(f"process/{clock['process']}" for clock in _clocks(undo.state)))

    def describe(self, spec: ClockSkewFault) -> str:
        name, fleet = spec.local_target, self._fleet
        known = name in fleet.processes or name in fleet.nodes
        members = fleet.members(name) if known else []
        faked = [p.spec.name for p in members if p.spec.fake_monotonic]
        monotonic = (
            "untouched"
            if not faked
            else "moves too"
            if len(faked) == len(members)
            else f"moves too for {', '.join(faked)}"
        )
        what = f"process {name}" if name in fleet.processes else f"every process of node {name}" if known else name
        sign = "+" if spec.offset > 0 else "-"
        rate = f", running at x{spec.drift:g}" if spec.drift is not None else ""
        return (
            f"wall clock of {what} shifted by {sign}{format_duration(abs(spec.offset))}{rate} "
            f"through libfaketime (CLOCK_MONOTONIC {monotonic}), for {format_duration(spec.duration)}"
        )
