"""memory.pressure: a ballast process holds `size` of resident memory for the fault's duration.

When the target has a memory_limit the ballast runs inside the target's cgroup, so it competes
with the target for that limit (reclaim, then the cgroup's OOM killer): the real thing. Without
one it runs beside the target and takes the memory from the whole machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import BinaryIO

from orchestrator.errors import FaultError, PreflightError
from orchestrator.faults.adopted import adopted_touched, vanished
from orchestrator.faults.base import Touched
from orchestrator.model.durations import format_duration
from orchestrator.model.sizes import size_bytes
from orchestrator.model.spec import MemoryPressureFault
from orchestrator.model.undo import Undo
from orchestrator.targets.cgroups import Cgroup, CgroupError, detect
from orchestrator.targets.local import LocalFleet, SupervisedProcess, alive, wait_gone
from orchestrator.targets.procfs import proc_files

SAFE_SHARE = 0.9
"""Without force, at most this share of the memory available to drillctl."""
READY_TIMEOUT = 20.0
"""Longest wait for the ballast to hold its first ramp step (all of `size` without a ramp)."""
EXIT_TIMEOUT = 10.0
REVERT_GRACE = 60.0
"""The ballast exits by itself this long after the fault should have been reverted."""


def available_memory() -> int:
    """MemAvailable, capped by what drillctl's own cgroup may still charge (a container sees host memory)."""
    with open("/proc/meminfo") as f:
        fields = dict(line.split(":", 1) for line in f)
    available = int(fields["MemAvailable"].split()[0]) * 1024
    try:
        headroom = detect().memory_headroom()
    except CgroupError:
        headroom = None
    return available if headroom is None else min(available, headroom)


def marked(marker: str) -> list[int]:
    """Live processes whose argv holds `marker` (an exiting process has an empty argv)."""
    return [pid for pid, argv in proc_files("cmdline") if marker.encode() in argv.split(b"\0") and alive(pid)]


def _append(path: Path) -> BinaryIO:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("ab")


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f}MiB"


class MemoryPressureDriver:
    name = "local.memory_pressure"

    def __init__(self, fleet: LocalFleet) -> None:
        self._fleet = fleet
        self._ballasts: dict[str, asyncio.subprocess.Process] = {}

    def _target(self, spec: MemoryPressureFault) -> SupervisedProcess | None:
        """The started process; None for an adopted one (no cgroup of drillctl's: the pressure is machine-wide)."""
        target = self._fleet.processes.get(spec.local_target)
        if target is None and spec.local_target not in self._fleet.adopted:
            raise PreflightError(f"memory.pressure {spec.name}: no local process {spec.local_target!r}")
        return target

    def _cgroup(self, spec: MemoryPressureFault) -> Cgroup | None:
        target = self._target(spec)
        return None if target is None else target.cgroup

    def _size(self, spec: MemoryPressureFault) -> int:
        cgroup = self._cgroup(spec)
        size = size_bytes(spec.size, None if cgroup is None else cgroup.memory_limit)
        if size is None:
            raise PreflightError(
                f"memory.pressure {spec.name}: {spec.size} needs a memory_limit on {spec.local_target}"
            )
        return size

    async def preflight(self, spec: MemoryPressureFault) -> None:
        size = self._size(spec)
        available = available_memory()
        if size > SAFE_SHARE * available and not spec.force:
            raise PreflightError(
                f"memory.pressure {spec.name}: {spec.size} ({_mib(size)}) is above {SAFE_SHARE:.0%} of the "
                f"{_mib(available)} available; set force: true to hold it anyway"
            )

    async def prepare(self, spec: MemoryPressureFault, step_id: str) -> Undo:
        cgroup = self._cgroup(spec)
        slug = step_id.replace("/", "-")
        return Undo(
            self.name,
            step_id,
            {
                "target": spec.local_target,
                "bytes": self._size(spec),
                "marker": f"drillctl-ballast-{slug}",
                "log": str(self._fleet.run_dir / "logs" / f"{slug}.ballast.log"),
                "cgroup": None if cgroup is None else str(cgroup.memory_dir),
                "adopted": [a.record() for a in self._fleet.adopted_members(spec.local_target)],
            },
        )

    async def inject(self, spec: MemoryPressureFault, undo: Undo) -> None:
        cgroup = self._cgroup(spec)
        state = undo.state
        log_path = Path(state["log"])
        lifetime = spec.ramp + spec.duration + REVERT_GRACE
        argv = [sys.executable, "-P", "-m", "orchestrator.faults.ballast", "--bytes", str(state["bytes"])]
        argv += ["--ramp", str(spec.ramp), "--lifetime", str(lifetime), "--marker", state["marker"]]
        with _append(log_path) as log:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                start_new_session=True,
                preexec_fn=None if cgroup is None else cgroup.join_in_child(),
            )
        self._ballasts[undo.step_id] = proc
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), READY_TIMEOUT)
        except TimeoutError:
            line = b""
        if line.strip() != b"ready":
            code = proc.returncode
            why = f"exited with {code}" if code is not None else f"not holding memory after {READY_TIMEOUT:g}s"
            raise FaultError(f"memory ballast {why} (killed by the OOM killer?); see {log_path}")

    async def revert(self, undo: Undo) -> list[str]:
        """Kill every process carrying the marker and wait until each has exited (its memory freed)."""
        found = marked(undo.state["marker"])
        for pid in found:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc = self._ballasts.pop(undo.step_id, None)
        if proc is not None:
            await asyncio.wait_for(proc.wait(), EXIT_TIMEOUT)
        await asyncio.to_thread(wait_gone, found, EXIT_TIMEOUT)
        if left := [pid for pid in found if alive(pid)]:
            raise FaultError(f"memory ballast still running {EXIT_TIMEOUT:g}s after SIGKILL: pids {left}")
        return vanished(undo.state)

    def touched(self, undo: Undo) -> Touched:
        return adopted_touched(undo)

    def describe(self, spec: MemoryPressureFault) -> str:
        cgroup = self._cgroup(spec)
        where = (
            f"inside the cgroup of process {spec.local_target} (limit {_mib(cgroup.memory_limit)})"
            if cgroup is not None
            else f"beside process {spec.local_target} (machine-wide)"
        )
        ramp = f", ramped over {format_duration(spec.ramp)}" if spec.ramp else ""
        return f"hold {spec.size} resident {where}{ramp}, for {format_duration(spec.duration)}"
