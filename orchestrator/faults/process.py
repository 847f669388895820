"""Faults on local process groups: stop-the-world pauses (`gc.pause`) and node loss (`node.loss`).

Undo records hold process-group ids, so a revert from the journal alone (after the orchestrator
died) can still SIGCONT a frozen group or re-enable a proxy; restarting a crashed process needs
the live fleet, which only the run that crashed it has. Adopted processes (`targets/adopted.py`)
are recorded by pid and start time, with how they are found and brought back, so a revert from
the record alone thaws them, or restarts them with their declared `restart`.
"""

from __future__ import annotations

import asyncio
import random
import signal
from pathlib import Path
from typing import Any

import structlog

from orchestrator.errors import PreflightError
from orchestrator.faults.adopted import adopted_pids, adopted_touched, vanished
from orchestrator.faults.base import Touched
from orchestrator.model.durations import format_duration
from orchestrator.model.spec import GcPauseFault, NodeLossFault
from orchestrator.model.undo import Undo
from orchestrator.targets import adopted
from orchestrator.targets.adopted import Identity
from orchestrator.targets.cgroups import thaw_directory
from orchestrator.targets.local import LocalFleet, SupervisedProcess, signal_group, wait_gone
from orchestrator.toxiproxy_client import ToxiproxyClient


def pause_schedule(spec: GcPauseFault, seed: int | None, step_id: str) -> list[float]:
    """Offsets (from injection) of every pause: one per period, each shifted by up to ±jitter.

    Seeded by the drill seed, so the same drill pauses at the same moments every run.
    """
    rng = random.Random(f"{seed}/{step_id.rsplit('/', 1)[-1]}")
    offsets = []
    k = 0
    while k * spec.every < spec.duration:
        shift = rng.uniform(-spec.jitter, spec.jitter) if spec.jitter else 0.0
        at = max(0.0, k * spec.every + shift)
        if at + spec.pause <= spec.duration:
            offsets.append(round(at, 6))
        k += 1
    return offsets


def _continue(pgids: list[int], others: list[Identity]) -> None:
    for pgid in pgids:
        signal_group(pgid, signal.SIGCONT)
    adopted.send(others, signal.SIGCONT)


class GcPauseDriver:
    """Freezes every process of the target with SIGSTOP for `pause`, every `every`."""

    name = "local.gc_pause"

    def __init__(self, fleet: LocalFleet, seed: int | None) -> None:
        self._fleet = fleet
        self._seed = seed
        self._loops: dict[str, asyncio.Task[None]] = {}
        self._log = structlog.get_logger().bind(driver=self.name)

    async def preflight(self, spec: GcPauseFault) -> None:
        return None

    async def prepare(self, spec: GcPauseFault, step_id: str) -> Undo:
        members = self._fleet.members(spec.local_target)
        pgids = [p.pid for p in members if p.pid is not None and p.running]
        return Undo(
            self.name,
            step_id,
            {
                "target": spec.local_target,
                "pgids": pgids,
                "adopted": [a.record() for a in self._fleet.adopted_members(spec.local_target)],
                "pause": spec.pause,
                "schedule": pause_schedule(spec, self._seed, step_id),
            },
        )

    async def inject(self, spec: GcPauseFault, undo: Undo) -> None:
        self._loops[undo.step_id] = asyncio.create_task(self._pauses(undo))

    async def _pauses(self, undo: Undo) -> None:
        pgids: list[int] = list(undo.state["pgids"])
        others = adopted_pids(undo.state)
        pause: float = undo.state["pause"]
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            for at in undo.state["schedule"]:
                await asyncio.sleep(max(0.0, start + at - loop.time()))
                for pgid in pgids:
                    signal_group(pgid, signal.SIGSTOP)
                adopted.send(others, signal.SIGSTOP)
                await asyncio.sleep(pause)
                _continue(pgids, others)
        finally:
            _continue(pgids, others)

    async def revert(self, undo: Undo) -> list[str]:
        loop = self._loops.pop(undo.step_id, None)
        if loop is not None:
            loop.cancel()
            await asyncio.gather(loop, return_exceptions=True)
        others = adopted_pids(undo.state)
        _continue(list(undo.state["pgids"]), others)
        return vanished(undo.state)

    def touched(self, undo: Undo) -> Touched:
        return adopted_touched(undo)

    def describe(self, spec: GcPauseFault) -> str:
        jitter = f" ±{format_duration(spec.jitter)}" if spec.jitter else ""
        return (
            f"SIGSTOP every process of {spec.local_target} for {format_duration(spec.pause)} every "
            f"{format_duration(spec.every)}{jitter}, for {format_duration(spec.duration)}"
        )


class NodeLossDriver:
    """A node (a group of local processes) crashes, stops, hangs or is cut off from the network."""

    name = "local.node_loss"

    def __init__(self, fleet: LocalFleet, toxiproxy: ToxiproxyClient) -> None:
        self._fleet = fleet
        self._toxiproxy = toxiproxy
        self._log = structlog.get_logger().bind(driver=self.name)

    async def preflight(self, spec: NodeLossFault) -> None:
        if spec.mode == "isolate" and not self._fleet.node_proxies[spec.local_target]:
            raise PreflightError(
                f"node {spec.local_target}: mode isolate needs the proxies that front it (nodes[].proxies)"
            )

    async def prepare(self, spec: NodeLossFault, step_id: str) -> Undo:
        members = self._fleet.nodes[spec.local_target]
        state: dict[str, Any] = {
            "node": spec.local_target,
            "mode": spec.mode,
            "processes": [p.spec.name for p in members],
            "pgids": [p.pid for p in members if p.pid is not None and p.running],
            "adopted": [a.record() for a in self._fleet.node_adopted[spec.local_target]],
            "url": self._toxiproxy.url,
            "proxies": {},
            "freezers": [
                {"dir": str(p.cgroup.freezer_dir), "version": p.cgroup.layout.version}
                for p in members
                if spec.mode == "freeze" and p.cgroup is not None and p.cgroup.freezer_dir is not None
            ],
        }
        if spec.mode == "isolate":
            for name in self._fleet.node_proxies[spec.local_target]:
                proxy = await self._toxiproxy.proxy(name)
                state["proxies"][name] = True if proxy is None else bool(proxy.get("enabled", True))
        return Undo(self.name, step_id, state)

    async def inject(self, spec: NodeLossFault, undo: Undo) -> None:
        """freeze: the cgroup freezer where the process has a cgroup (all of it at once), else SIGSTOP."""
        members = self._fleet.nodes[spec.local_target]
        others = adopted_pids(undo.state)
        if spec.mode == "crash":
            adopted.send(others, signal.SIGKILL)
            await asyncio.gather(*(p.kill() for p in members))
        elif spec.mode == "stop":
            await asyncio.gather(*(p.stop(grace=spec.grace, hold=True) for p in members), _stop(others, spec.grace))
        elif spec.mode == "freeze":
            for proc in members:
                if proc.cgroup is not None and proc.cgroup.freezer_dir is not None:
                    await proc.cgroup.freeze()
                elif proc.pid is not None:
                    signal_group(proc.pid, signal.SIGSTOP)
            adopted.send(others, signal.SIGSTOP)
        else:
            for name in undo.state["proxies"]:
                await self._toxiproxy.set_enabled(name, False)

    async def revert(self, undo: Undo) -> list[str]:
        mode = undo.state["mode"]
        others = adopted_pids(undo.state)
        if mode == "freeze":
            for freezer in undo.state["freezers"]:
                thaw_directory(Path(freezer["dir"]), freezer["version"])
            _continue(list(undo.state["pgids"]), others)
            return vanished(undo.state)
        if mode == "isolate":
            client = self._toxiproxy if undo.state["url"] == self._toxiproxy.url else ToxiproxyClient(undo.state["url"])
            for name, was_enabled in undo.state["proxies"].items():
                if await client.proxy(name) is not None:
                    await client.set_enabled(name, bool(was_enabled))
            return vanished(undo.state)
        await self._restart([self._fleet.processes[n] for n in undo.state["processes"] if n in self._fleet.processes])
        return [note for member in undo.state.get("adopted", []) if (note := await _bring_back(member))]

    def touched(self, undo: Undo) -> Touched:
        return adopted_touched(undo)

    async def _restart(self, members: list[SupervisedProcess]) -> None:
        """Bring crashed or stopped processes back; ones already back (or never down) are left alone."""
        for proc in members:
            if not proc.running:
                await proc.start()
                self._log.info("node_process_restarted", process=proc.spec.name, pid=proc.pid)

    def describe(self, spec: NodeLossFault) -> str:
        what = {
            "crash": "SIGKILL every process of",
            "stop": f"SIGTERM (SIGKILL after {format_duration(spec.grace)}) every process of",
            "freeze": "SIGSTOP every process of",
            "isolate": "disable every Toxiproxy proxy in front of",
        }[spec.mode]
        back = "then bring it back" if spec.restore else "and leave recovery to the system until the drill ends"
        return f"{what} node {spec.local_target} for {format_duration(spec.duration)}, {back}"


async def _stop(others: list[Identity], grace: float) -> None:
    """SIGTERM the adopted processes, SIGKILL whoever is left after `grace` (SIGCONT first: one may be frozen)."""
    reached = adopted.send(others, signal.SIGTERM)
    adopted.send(reached, signal.SIGCONT)
    await asyncio.to_thread(wait_gone, [who.pid for who in reached], grace)
    adopted.send(adopted.living(reached), signal.SIGKILL)


async def _bring_back(member: Any) -> str | None:
    """After a crash or stop: run its declared restart, unless it is back already (or declares none)."""
    name = member["name"]
    if member["restart"] is None:
        return f"adopted process {name}: not restarted (restore: false)"
    try:
        back = adopted.find(member["find"])
    except adopted.AdoptError as e:
        return f"adopted process {name}: not restarted, {e}"
    if back:
        if not member["pids"]:
            return f"adopted process {name}: not running when the fault began, running now as pid {back[0].pid}"
        if adopted.living(Identity.from_json(p) for p in member["pids"][:1]):
            return None  # it never went down: nothing to do
        return f"adopted process {name}: back already as pid {back[0].pid}, restart not run"
    pid = await adopted.restart_detached(list(member["restart"]), member["cwd"], member["log"])
    return f"adopted process {name}: restarted with {member['restart'][0]} (pid {pid}), log {member['log']}"
