"""gc.full: `jcmd <pid> GC.run` (System.gc(), a full collection on HotSpot's default collectors) every `every`.

The calls run in a background task that inject starts and revert stops; revert lets a call in
flight finish, so no collection it asked for lands after the revert. A revert from the journal in
a later process finds no task: the collections stopped with the process that ran them.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from pathlib import Path

import structlog

from orchestrator.errors import FaultError, PreflightError
from orchestrator.model.durations import format_duration
from orchestrator.model.spec import GcFullFault
from orchestrator.model.undo import Undo
from orchestrator.targets.local import LocalFleet, SupervisedProcess

JCMD = "jcmd"
JCMD_TIMEOUT = 10.0
"""Longest one `jcmd GC.run` may take (attach included); it is killed after that."""


def jvm_pid(target: SupervisedProcess) -> int | None:
    """The first process of the target's group that has libjvm mapped (the JVM, even behind a wrapper script)."""
    for pid in target.group_pids():
        try:
            maps = Path(f"/proc/{pid}/maps").read_text()
        except OSError:
            continue
        if "/libjvm.so" in maps:
            return pid
    return None


class GcFullDriver:
    name = "local.gc_full"

    def __init__(self, fleet: LocalFleet) -> None:
        self._fleet = fleet
        self._loops: dict[str, tuple[asyncio.Event, asyncio.Task[None]]] = {}
        self._log = structlog.get_logger().bind(driver=self.name)

    async def preflight(self, spec: GcFullFault) -> None:
        if spec.target not in self._fleet.processes:
            raise PreflightError(f"gc.full {spec.name}: no local process {spec.target!r}")
        if shutil.which(JCMD) is None:
            raise PreflightError(f"gc.full {spec.name}: {JCMD!r} not found on PATH (it comes with a JDK)")

    async def prepare(self, spec: GcFullFault, step_id: str) -> Undo:
        pid = jvm_pid(self._fleet.processes[spec.target])
        if pid is None:
            raise FaultError(f"gc.full {spec.name}: no running JVM in process {spec.target}")
        return Undo(self.name, step_id, {"target": spec.target, "pid": pid, "every": spec.every})

    async def inject(self, spec: GcFullFault, undo: Undo) -> None:
        stop = asyncio.Event()
        loop = self._collect(int(undo.state["pid"]), float(undo.state["every"]), undo.step_id, stop)
        self._loops[undo.step_id] = (stop, asyncio.create_task(loop))

    async def revert(self, undo: Undo) -> None:
        entry = self._loops.pop(undo.step_id, None)
        if entry is not None:
            stop, task = entry
            stop.set()
            await task

    def describe(self, spec: GcFullFault) -> str:
        return (
            f"full GC of the JVM in process {spec.target} (jcmd GC.run) every {format_duration(spec.every)}, "
            f"for {format_duration(spec.duration)}"
        )

    async def _collect(self, pid: int, every: float, step_id: str, stop: asyncio.Event) -> None:
        """One GC.run per period until `stop`; a call that overruns delays the next rather than piling up."""
        clock = asyncio.get_running_loop()
        due = clock.time()
        while not stop.is_set():
            await self._gc_run(pid, step_id)
            due = max(due + every, clock.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), due - clock.time())

    async def _gc_run(self, pid: int, step_id: str) -> None:
        try:
            proc = await asyncio.create_subprocess_exec(
                JCMD,
                str(pid),
                "GC.run",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
        except OSError as e:
            self._log.warning("jcmd_not_started", step=step_id, pid=pid, error=str(e))
            return
        try:
            output, _ = await asyncio.wait_for(proc.communicate(), JCMD_TIMEOUT)
        except TimeoutError:
            self._log.warning("jcmd_timeout", step=step_id, pid=pid, timeout=JCMD_TIMEOUT)
            return
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        if proc.returncode != 0:
            text = output.decode(errors="replace").strip()[-500:]
            self._log.warning("jcmd_failed", step=step_id, pid=pid, code=proc.returncode, output=text)
