"""Local processes a drill starts, supervises (restart policy) and stops.

Each process runs in its own session, so a signal to its process group reaches every
child it forks; its stdout and stderr go to `<run>/logs/<name>.log`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from pathlib import Path

import structlog

from orchestrator.errors import PreflightError
from orchestrator.model.spec import LocalProcess
from orchestrator.probes.registry import build_probe


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
    def __init__(self, spec: LocalProcess, folder: Path, log_dir: Path) -> None:
        self.spec = spec
        self.cwd = resolve_cwd(spec, folder)
        self.log_path = log_dir / f"{spec.name}.log"
        self.restarts = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._stopping = False
        self._log = structlog.get_logger().bind(process=spec.name)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def start(self) -> None:
        await self._spawn()
        self._watcher = asyncio.create_task(self._supervise())

    async def _spawn(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._proc = await asyncio.create_subprocess_exec(
                *self.spec.argv,
                cwd=self.cwd,
                env={**os.environ, **self.spec.env},
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        self._log.info("process_started", pid=self._proc.pid, argv=self.spec.argv)

    async def _supervise(self) -> None:
        policy = self.spec.restart
        while self._proc is not None:
            code = await self._proc.wait()
            if self._stopping:
                return
            self._log.warning("process_exited", pid=self._proc.pid, code=code)
            wanted = policy.policy == "always" or (policy.policy == "on-failure" and code != 0)
            if not wanted or self.restarts >= policy.max_restarts:
                return
            await asyncio.sleep(policy.delay)
            if self._stopping:
                return
            self.restarts += 1
            await self._spawn()

    async def wait_ready(self) -> None:
        """Until the readiness probe passes, within its timeout; a process that exits fails at once."""
        ready = self.spec.ready
        if ready is None:
            return
        probe = build_probe(ready.probe, max_in_flight=1)
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

    async def stop(self) -> None:
        """SIGTERM the process group, SIGKILL after the grace period."""
        self._stopping = True
        proc = self._proc
        if proc is not None and proc.returncode is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), self.spec.stop_grace)
            except TimeoutError:
                _signal_group(proc.pid, signal.SIGKILL)
                await asyncio.wait_for(proc.wait(), 5.0)
            self._log.info("process_stopped", pid=proc.pid, code=proc.returncode)
        if proc is not None:
            _signal_group(proc.pid, signal.SIGKILL)  # children the leader left behind
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
