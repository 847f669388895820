"""gc.full: `jcmd <pid> GC.run` (System.gc(), a full collection on HotSpot's default collectors) every `every`.

The target is a process or a node, started or adopted: each JVM in it (the first process of a started one's
group, or of an adopted one's tree, with libjvm mapped) is collected. The calls run in a background task that
inject starts and revert stops; revert lets a call in flight finish, so no collection it asked for lands after
the revert. Each JVM is recorded by pid and start time, and a call goes only to the process found, never to a
recycled pid (jcmd's attach sends SIGQUIT, which would kill a process that is not a JVM). A revert from the
journal in a later process finds no task: the collections stopped with the process that ran them.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import structlog

from orchestrator.errors import FaultError, PreflightError
from orchestrator.faults.base import Touched
from orchestrator.model.durations import format_duration
from orchestrator.model.spec import GcFullFault
from orchestrator.model.undo import Undo
from orchestrator.targets import adopted
from orchestrator.targets.adopted import Identity
from orchestrator.targets.local import LocalFleet, SupervisedProcess

JCMD = "jcmd"
JCMD_TIMEOUT = 10.0
"""Longest one `jcmd GC.run` may take (attach included); it is killed after that."""


def jvm_in(pids: Iterable[int]) -> int | None:
    """The first of the processes that has libjvm mapped (the JVM, even behind a wrapper script)."""
    for pid in pids:
        try:
            maps = Path(f"/proc/{pid}/maps").read_text()
        except OSError:
            continue
        if "/libjvm.so" in maps:
            return pid
    return None


def jvm_pid(target: SupervisedProcess) -> int | None:
    """The JVM of a started process's group."""
    return jvm_in(target.group_pids())


class GcFullDriver:
    name = "local.gc_full"

    def __init__(self, fleet: LocalFleet) -> None:
        self._fleet = fleet
        self._loops: dict[str, tuple[asyncio.Event, asyncio.Task[None]]] = {}
        self._log = structlog.get_logger().bind(driver=self.name)

    def _known(self, spec: GcFullFault) -> str:
        name = spec.local_target
        if not self._fleet.declares(name):
            raise PreflightError(f"gc.full {spec.name}: no local process or node {name!r}")
        return name

    async def preflight(self, spec: GcFullFault) -> None:
        self._known(spec)
        if shutil.which(JCMD) is None:
            raise PreflightError(f"gc.full {spec.name}: {JCMD!r} not found on PATH (it comes with a JDK)")

    async def prepare(self, spec: GcFullFault, step_id: str) -> Undo:
        name = self._known(spec)
        jvms: list[dict[str, Any]] = []
        for proc in self._fleet.members(name):
            pid = jvm_pid(proc) if proc.running else None
            if pid is not None and (start := adopted.start_time(pid)) is not None:
                jvms.append({"process": proc.spec.name, "pid": pid, "start": start})
        for member in self._fleet.adopted_members(name):
            found = {who.pid: who for who in member.find()}
            if (pid := jvm_in(found)) is not None:
                jvms.append({"process": member.spec.name, "pid": pid, "start": found[pid].start})
        if not jvms:
            raise FaultError(f"gc.full {spec.name}: no running JVM in {name}")
        return Undo(self.name, step_id, {"target": name, "jvms": jvms, "every": spec.every})

    async def inject(self, spec: GcFullFault, undo: Undo) -> None:
        stop = asyncio.Event()
        jvms = [Identity(int(j["pid"]), int(j["start"])) for j in undo.state["jvms"]]
        loop = self._collect(jvms, float(undo.state["every"]), undo.step_id, stop)
        self._loops[undo.step_id] = (stop, asyncio.create_task(loop))

    async def revert(self, undo: Undo) -> None:
        entry = self._loops.pop(undo.step_id, None)
        if entry is not None:
            stop, task = entry
            stop.set()
            await task

    def touched(self, undo: Undo) -> Touched:
        return Touched(tuple(f"process/{j['process']} (JVM pid {j['pid']})" for j in undo.state.get("jvms", [])))

    def describe(self, spec: GcFullFault) -> str:
        name, fleet = spec.local_target, self._fleet
        what = f"every JVM of node {name}" if name in fleet.nodes else f"the JVM in process {name}"
        return (
            f"full GC of {what} (jcmd GC.run) every {format_duration(spec.every)}, for {format_duration(spec.duration)}"
        )

    async def _collect(self, jvms: list[Identity], every: float, step_id: str, stop: asyncio.Event) -> None:
        """One GC.run of each JVM still running per period until `stop`; a call that overruns delays the next rather
        than piling up."""
        clock = asyncio.get_running_loop()
        due = clock.time()
        while not stop.is_set():
            await asyncio.gather(*(self._gc_run(who.pid, step_id) for who in adopted.living(jvms)))
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
