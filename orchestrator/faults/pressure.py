"""memory.pressure: a ballast process holds `size` of resident memory for the fault's duration.

The ballast is charged where the target is, whenever the target has a memory cgroup of its own: a
started target with a memory_limit (drillctl's cgroup for it), or an adopted one that sits in a
memory cgroup other than the root and drillctl's own (a container's, a systemd unit's). It joins that
cgroup before exec, so it competes with the target for the cgroup's memory and limit (reclaim, then the
cgroup's OOM killer): the real thing. Otherwise it runs beside the target and takes the memory from the
whole machine (or from the cgroup drillctl shares with it), and the plan, the live view and the report
say so and why (`Placement`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from orchestrator.errors import FaultError, PreflightError
from orchestrator.faults.adopted import adopted_touched, vanished
from orchestrator.faults.base import Touched
from orchestrator.model.durations import format_duration
from orchestrator.model.sizes import size_bytes
from orchestrator.model.spec import MemoryPressureFault
from orchestrator.model.undo import Undo
from orchestrator.targets.adopted import AdoptedTarget, AdoptError
from orchestrator.targets.cgroups import CgroupError, detect, joiner, memory_cgroup_of
from orchestrator.targets.local import LocalFleet, alive, wait_gone
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


@dataclass(frozen=True)
class Placement:
    """Where the ballast runs, and what that means for the target, in words the plan and report print."""

    join: tuple[str, ...]
    """cgroup.procs files the ballast writes itself into before exec; none: it stays in drillctl's cgroup."""
    limit: int | None
    """The memory limit of the cgroup the pressure counts against, None without one."""
    where: str
    """`hold 64MiB resident <where>`."""


def adopted_placement(target: AdoptedTarget) -> Placement:
    """Inside the adopted process's memory cgroup when it has one of its own (neither the root nor drillctl's),
    else beside it, saying why (read-only)."""
    name = target.spec.name
    try:
        found = target.find()
    except AdoptError as e:
        return Placement((), None, f"beside adopted process {name}, machine-wide: {e}")
    if not found:
        return Placement(
            (), None, f"beside adopted process {name}, machine-wide: it is not running, so it has no cgroup"
        )
    pid = found[0].pid
    try:
        theirs, ours = memory_cgroup_of(pid), memory_cgroup_of()
    except CgroupError as e:
        return Placement((), None, f"beside adopted process {name} (pid {pid}), machine-wide: {e}")
    if theirs.path == "/":
        why = "it sits in the root memory cgroup, which charges nothing to it alone"
        return Placement((), None, f"beside adopted process {name} (pid {pid}), machine-wide: {why}")
    if theirs.directory == ours.directory:
        limit = ours.limit()
        bound = f"limit {_mib(limit)}" if limit is not None else "no limit: machine-wide"
        return Placement(
            (),
            limit,
            f"beside adopted process {name} (pid {pid}), in drillctl's own memory cgroup {theirs.directory}, which it "
            f"shares ({bound}): charged to drillctl as much as to it",
        )
    limit = theirs.limit()
    bound = f"limit {_mib(limit)}" if limit is not None else "no limit"
    return Placement(
        (str(theirs.directory / "cgroup.procs"),),
        limit,
        f"inside the memory cgroup of adopted process {name} (pid {pid}), {theirs.directory} ({bound}), charged to it",
    )


class MemoryPressureDriver:
    name = "local.memory_pressure"

    def __init__(self, fleet: LocalFleet) -> None:
        self._fleet = fleet
        self._ballasts: dict[str, asyncio.subprocess.Process] = {}

    def _placement(self, spec: MemoryPressureFault) -> Placement:
        name = spec.local_target
        target = self._fleet.processes.get(name)
        if target is not None:
            cgroup = target.cgroup
            if cgroup is None:
                return Placement((), None, f"beside process {name}, machine-wide: it has no memory_limit")
            where = f"inside the cgroup of process {name} (limit {_mib(cgroup.memory_limit)})"
            return Placement(tuple(cgroup.procs_files()), cgroup.memory_limit, where)
        if name not in self._fleet.adopted:
            raise PreflightError(f"memory.pressure {spec.name}: no local process {name!r}")
        return adopted_placement(self._fleet.adopted[name])

    def _size(self, spec: MemoryPressureFault) -> int:
        """A share is of a started target's memory_limit (the loader refuses one for an adopted target)."""
        started = self._fleet.processes.get(spec.local_target)
        cgroup = None if started is None else started.cgroup
        size = size_bytes(spec.size, None if cgroup is None else cgroup.memory_limit)
        if size is None:
            raise PreflightError(
                f"memory.pressure {spec.name}: {spec.size} needs a memory_limit on {spec.local_target}"
            )
        return size

    def _checked(self, spec: MemoryPressureFault) -> tuple[int, Placement]:
        """The size and placement, or PreflightError: above what is safe, above the cgroup's limit, or a cgroup
        this user cannot move the ballast into."""
        placement = self._placement(spec)
        size = self._size(spec)
        available = available_memory()
        if size > SAFE_SHARE * available and not spec.force:
            raise PreflightError(
                f"memory.pressure {spec.name}: {spec.size} ({_mib(size)}) is above {SAFE_SHARE:.0%} of the "
                f"{_mib(available)} available; set force: true to hold it anyway"
            )
        if placement.join and placement.limit is not None and size > placement.limit and not spec.force:
            raise PreflightError(
                f"memory.pressure {spec.name}: {spec.size} is above the limit of the cgroup it would be charged to "
                f"({_mib(placement.limit)}): {placement.where}; set force: true to hold it anyway"
            )
        adopted = spec.local_target in self._fleet.adopted  # a started target's cgroup is drillctl's own making
        for procs in placement.join if adopted else ():
            if not os.access(procs, os.W_OK):
                raise PreflightError(
                    f"memory.pressure {spec.name}: cannot move the ballast into {Path(procs).parent} "
                    f"({procs} is not writable by this user), where it would be charged to {spec.local_target}"
                )
        return size, placement

    async def preflight(self, spec: MemoryPressureFault) -> None:
        self._checked(spec)

    async def prepare(self, spec: MemoryPressureFault, step_id: str) -> Undo:
        size, placement = self._checked(spec)
        slug = step_id.replace("/", "-")
        return Undo(
            self.name,
            step_id,
            {
                "target": spec.local_target,
                "bytes": size,
                "marker": f"drillctl-ballast-{slug}",
                "log": str(self._fleet.run_dir / "logs" / f"{slug}.ballast.log"),
                "join": list(placement.join),
                "placement": placement.where,
                "adopted": [a.record() for a in self._fleet.adopted_members(spec.local_target)],
            },
        )

    async def inject(self, spec: MemoryPressureFault, undo: Undo) -> None:
        state = undo.state
        log_path = Path(state["log"])
        lifetime = spec.ramp + spec.duration + REVERT_GRACE
        argv = [sys.executable, "-P", "-m", "orchestrator.faults.ballast", "--bytes", str(state["bytes"])]
        argv += ["--ramp", str(spec.ramp), "--lifetime", str(lifetime), "--marker", state["marker"]]
        try:
            with _append(log_path) as log:
                proc = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=log,
                    start_new_session=True,
                    preexec_fn=joiner(list(state["join"])) if state["join"] else None,
                )
        except subprocess.SubprocessError as e:  # the child could not join the cgroup: it never ran
            raise FaultError(f"memory ballast not started: it could not join {', '.join(state['join'])}: {e}") from e
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
        """The adopted processes found, then where the ballast ran (records from before it was said: nothing)."""
        found = adopted_touched(undo).targets
        placement = undo.state.get("placement")
        return Touched(found if placement is None else (*found, f"ballast {placement}"))

    def describe(self, spec: MemoryPressureFault) -> str:
        """Where the ballast would run if injected now (an adopted target's cgroup is looked up again at injection)."""
        try:
            where = self._placement(spec).where
        except PreflightError:  # a resolver's placeholder: the target is known at injection
            where = f"for {spec.local_target} (in its memory cgroup if it has one of its own, else machine-wide)"
        ramp = f", ramped over {format_duration(spec.ramp)}" if spec.ramp else ""
        return f"hold {spec.size} resident {where}{ramp}, for {format_duration(spec.duration)}"
