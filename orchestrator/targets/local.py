"""Local processes a drill starts, supervises (restart policy) and stops.

Each process runs in its own session, so a signal to its process group reaches every
child it forks; its stdout and stderr go to `<run>/logs/<name>.log`.
"""

from __future__ import annotations

import asyncio
import os
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from orchestrator.errors import PreflightError
from orchestrator.model.sizes import size_bytes
from orchestrator.model.spec import LocalProcess, LocalTargets
from orchestrator.probes.registry import build_probe
from orchestrator.targets import faketime
from orchestrator.targets.adopted import AdoptedTarget, AdoptError
from orchestrator.targets.cgroups import Cgroup, CgroupError
from orchestrator.targets.procfs import proc_files


def resolve_cwd(spec: LocalProcess, folder: Path) -> Path:
    return (folder / spec.cwd).resolve() if spec.cwd else folder.resolve()


def preflight_process(spec: LocalProcess, folder: Path) -> None:
    """The process can be started: its folder exists and its program is found."""
    cwd = resolve_cwd(spec, folder)
    if not cwd.is_dir():
        raise PreflightError(f"process {spec.name}: cwd {cwd} is not a folder")
    program = spec.argv[0]
    if "/" in program:
        path = cwd / program
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise PreflightError(f"process {spec.name}: {path} is not an executable file")
    elif shutil.which(program, path=spec.env.get("PATH", os.environ.get("PATH"))) is None:
        raise PreflightError(f"process {spec.name}: program {program!r} not found on PATH")


class SupervisedProcess:
    def __init__(self, spec: LocalProcess, folder: Path, run_dir: Path) -> None:
        self.spec = spec
        self.folder = folder
        """The drill file's, where its readiness probe runs (its own `cwd` is for the process)."""
        self.cwd = resolve_cwd(spec, folder)
        self.run_dir = run_dir
        limit = None if spec.memory_limit is None else size_bytes(spec.memory_limit, None)
        self.cgroup = None if limit is None else Cgroup(f"drillctl-{run_dir.name}-{spec.name}", limit)
        """Its own cgroup (named from the run and the process), created at the first start."""
        self.log_path = run_dir / "logs" / f"{spec.name}.log"
        self.offset_file = run_dir / "faketime" / f"{spec.name}.offset" if spec.clock == "faketime" else None
        self.restarts = 0
        self.held = False
        """While held (a node-loss fault has it down), exits are expected: no restart."""
        self.on_spawn: Callable[[int], None] | None = None
        """Told the process group of every (re)start: the run's watchdog keeps the list."""
        self._proc: asyncio.subprocess.Process | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._stopping = False
        self._log = structlog.get_logger().bind(process=spec.name)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    def group_pids(self) -> list[int]:
        """Every live process in its process group (it runs in a session of its own)."""
        if self._proc is None:
            return []
        return pids_in_group(self._proc.pid)

    def _environment(self) -> dict[str, str]:
        env = {**os.environ, **self.spec.env}
        if self.offset_file is not None:
            self.offset_file.parent.mkdir(parents=True, exist_ok=True)
            if not self.offset_file.exists():
                faketime.write_offset(self.offset_file, faketime.NO_SKEW)
            preload = env.get("LD_PRELOAD")
            env.update(faketime.environment(faketime.find_library(), self.offset_file, self.spec.fake_monotonic))
            if preload:  # keep what the process preloads already, after libfaketime
                env["LD_PRELOAD"] = f"{env['LD_PRELOAD']}:{preload}"
        return env

    async def start(self) -> None:
        """Start (or, after a node loss, start again) and supervise."""
        self._stopping = False
        self.held = False
        await self._spawn()
        self._watcher = asyncio.create_task(self._supervise())

    async def _spawn(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        join = None
        if self.cgroup is not None:
            self.cgroup.create()
            join = self.cgroup.join_in_child()
        with self.log_path.open("ab") as log:
            try:
                self._proc = await asyncio.create_subprocess_exec(
                    *self.spec.argv,
                    cwd=self.cwd,
                    env=self._environment(),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=join,
                )
            except subprocess.SubprocessError as e:
                assert self.cgroup is not None  # only a preexec_fn raises SubprocessError
                raise CgroupError(f"process {self.spec.name} could not join {self.cgroup.dirs()}: {e}") from e
        if self.on_spawn is not None:
            self.on_spawn(self._proc.pid)
        self._log.info("process_started", pid=self._proc.pid, argv=self.spec.argv)

    async def _supervise(self) -> None:
        policy = self.spec.restart
        while self._proc is not None:
            code = await self._proc.wait()
            if self._stopping or self.held:
                return
            self._log.warning("process_exited", pid=self._proc.pid, code=code)
            wanted = policy.policy == "always" or (policy.policy == "on-failure" and code != 0)
            if not wanted or self.restarts >= policy.max_restarts:
                return
            await asyncio.sleep(policy.delay)
            if self._stopping or self.held:
                return
            self.restarts += 1
            await self._spawn()

    async def wait_ready(self) -> None:
        """Until the readiness probe passes, within its timeout; a process that exits fails at once."""
        ready = self.spec.ready
        if ready is None:
            return
        probe = build_probe(ready.probe, 1, self.folder)
        deadline = time.monotonic() + ready.timeout
        last = "no check finished"
        try:
            while time.monotonic() < deadline:
                if self._proc is not None and self._proc.returncode is not None and self.restarts == 0:
                    raise PreflightError(
                        f"process {self.spec.name} exited with code {self._proc.returncode} before it was "
                        f"ready; see {self.log_path}"
                    )
                seen = await probe.observe()
                if seen.ok:
                    self._log.info("process_ready", pid=self.pid)
                    return
                last = seen.error or "not ok"
                await asyncio.sleep(ready.interval)
        finally:
            await probe.close()
        raise PreflightError(
            f"process {self.spec.name} not ready within {ready.timeout:g}s (last check: {last}); see {self.log_path}"
        )

    async def stop(self, grace: float | None = None, hold: bool = False) -> None:
        """SIGTERM the process group, SIGKILL after the grace period; SIGCONT first in case it is frozen.

        With `hold`, the process stays down until `start()` (a node loss); otherwise for good (teardown).
        """
        self.held = hold
        self._stopping = not hold
        proc = self._proc
        if proc is not None and proc.returncode is None:
            signal_group(proc.pid, signal.SIGTERM)
            signal_group(proc.pid, signal.SIGCONT)
            try:
                await asyncio.wait_for(proc.wait(), self.spec.stop_grace if grace is None else grace)
            except TimeoutError:
                signal_group(proc.pid, signal.SIGKILL)
                await asyncio.wait_for(proc.wait(), 5.0)
            self._log.info("process_stopped", pid=proc.pid, code=proc.returncode)
        if proc is not None:
            left = pids_in_group(proc.pid)  # children the leader left behind
            signal_group(proc.pid, signal.SIGKILL)
            await asyncio.to_thread(wait_gone, left, 5.0)
        await self._unwatch()
        if not hold and self.cgroup is not None:
            await self.cgroup.remove()

    async def kill(self) -> None:
        """SIGKILL the whole group at once, as a machine that loses power; held down until `start()`."""
        self.held = True
        proc = self._proc
        if proc is not None:
            signal_group(proc.pid, signal.SIGKILL)
            if proc.returncode is None:
                await asyncio.wait_for(proc.wait(), 5.0)
            self._log.info("process_killed", pid=proc.pid)
        await self._unwatch()

    async def _unwatch(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
            self._watcher = None


def signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Signal a process group; False when it no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def wait_gone(pids: list[int], timeout: float) -> None:
    """Wait for processes that are not our children to exit, on pidfds (readable once a process ends)."""
    fds = []
    for pid in pids:
        try:
            fds.append(os.pidfd_open(pid))
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + timeout
    try:
        waiting = list(fds)
        while waiting and (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select(waiting, [], [], left)
            waiting = [fd for fd in waiting if fd not in ready]
    finally:
        for fd in fds:
            os.close(fd)


def pids_in_group(pgid: int) -> list[int]:
    """Live members of a process group, from /proc (field 5 of stat is the group)."""
    found = []
    for pid, raw in proc_files("stat"):
        stat = raw.decode(errors="replace")
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(pid)
    return sorted(found)


def alive(pid: int) -> bool:
    """Not exited: a zombie its parent has yet to reap holds no memory and runs no code."""
    return process_state(pid) not in (None, "Z")


def process_state(pid: int) -> str | None:
    """The one-letter state of /proc/<pid>/stat (R, S, T...), None when gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2]


class LocalFleet:
    """The local processes of a drill and its named nodes; shared by the engine and the drivers."""

    def __init__(self, targets: LocalTargets, folder: Path, run_dir: Path) -> None:
        self.targets = targets
        self.folder = folder
        self.run_dir = run_dir
        self.processes = {p.name: SupervisedProcess(p, folder, run_dir) for p in targets.processes}
        self.adopted = {p.name: AdoptedTarget.of(p, folder, run_dir) for p in targets.adopted}
        """Processes it did not start (`targets/adopted.py`), found anew whenever a fault needs them."""
        self.nodes = {n.name: [self.processes[p] for p in n.processes if p in self.processes] for n in targets.nodes}
        self.node_adopted = {n.name: [self.adopted[p] for p in n.processes if p in self.adopted] for n in targets.nodes}
        self.node_proxies = {n.name: list(n.proxies) for n in targets.nodes}

    def announce_to(self, on_spawn: Callable[[int], None]) -> None:
        for proc in self.processes.values():
            proc.on_spawn = on_spawn

    def declares(self, name: str) -> bool:
        """A started or adopted process, or a node, by that name."""
        return name in self.processes or name in self.adopted or name in self.nodes

    def members(self, name: str) -> list[SupervisedProcess]:
        """A started process by name, or every started process of a node (adopted ones: `adopted_members`)."""
        if name in self.processes:
            return [self.processes[name]]
        return [] if name in self.adopted else self.nodes[name]

    def adopted_members(self, name: str) -> list[AdoptedTarget]:
        """An adopted process by name, or every adopted process of a node."""
        if name in self.adopted:
            return [self.adopted[name]]
        return self.node_adopted.get(name, [])

    def node_members(self, node: str) -> set[str]:
        """Names of a node's started and adopted processes."""
        return {p.spec.name for p in self.nodes[node]} | {a.spec.name for a in self.node_adopted[node]}

    def preflight(self, folder: Path) -> None:
        for adopted in self.adopted.values():
            try:
                found = adopted.find()
            except AdoptError as e:
                raise PreflightError(f"adopted process {adopted.spec.name}: {e}") from e
            if not found:
                raise PreflightError(f"adopted process {adopted.spec.name}: nothing found by {adopted.describe()}")
        for proc in self.processes.values():
            preflight_process(proc.spec, folder)
            if proc.offset_file is not None:
                faketime.find_library()
            if proc.cgroup is not None:
                try:
                    proc.cgroup.layout.check_delegation()
                except CgroupError as e:
                    raise PreflightError(f"process {proc.spec.name}: memory_limit needs a usable cgroup: {e}") from e
