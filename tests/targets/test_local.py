"""SupervisedProcess with real child processes: readiness, restart policy, logs, group stop."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import PreflightError
from orchestrator.model.spec import LocalProcess
from orchestrator.targets.local import SupervisedProcess, alive, preflight_process
from tests.fixtures.toxiproxy import free_port
from tests.support import upstream_process


def _spec(**fields: Any) -> LocalProcess:
    return LocalProcess.model_validate({"name": "svc", **fields})


def test_ready_when_its_probe_passes_and_logs_are_captured(tmp_path: Path) -> None:
    spec = LocalProcess.model_validate(upstream_process("svc", free_port()))

    async def scenario() -> int | None:
        proc = SupervisedProcess(spec, tmp_path, tmp_path)
        await proc.start()
        try:
            await proc.wait_ready()
            return proc.pid
        finally:
            await proc.stop()

    pid = asyncio.run(scenario())
    assert pid is not None and not alive(pid)
    assert "listening on 127.0.0.1" in (tmp_path / "logs" / "svc.log").read_text()


def test_restarts_on_failure_after_its_delay(tmp_path: Path) -> None:
    script = "import sys, time; print('boot', flush=True); time.sleep(0.2); sys.exit(3)"
    spec = _spec(
        argv=[sys.executable, "-c", script], restart={"policy": "on-failure", "delay": "100ms", "max_restarts": 2}
    )

    log = tmp_path / "logs" / "svc.log"

    async def scenario() -> int:
        proc = SupervisedProcess(spec, tmp_path, tmp_path)
        await proc.start()
        # Three boots of 0.2 s and two delays of 0.1 s, each boot a Python start-up: on a loaded machine that
        # takes seconds, so wait for the third boot (within a deadline), then long enough for a fourth.
        deadline = time.monotonic() + 30
        while log.read_text().count("boot") < 3 and time.monotonic() < deadline:  # noqa: ASYNC110 (a log file)
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        await proc.stop()
        return proc.restarts

    assert asyncio.run(scenario()) == 2
    assert log.read_text().count("boot") == 3


def test_stop_reaches_children_of_the_process(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    script = (
        "import subprocess, sys, time; "
        f"c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        f"open({str(pid_file)!r}, 'w').write(str(c.pid)); time.sleep(60)"
    )
    spec = _spec(argv=[sys.executable, "-c", script], stop_grace="2s")

    async def scenario() -> int:
        proc = SupervisedProcess(spec, tmp_path, tmp_path)
        await proc.start()
        for _ in range(100):
            if pid_file.exists() and pid_file.read_text():
                break
            await asyncio.sleep(0.05)
        child = int(pid_file.read_text())
        await proc.stop()
        return child

    child = asyncio.run(scenario())
    assert not alive(child)


def test_exit_before_ready_is_a_preflight_error_naming_the_log(tmp_path: Path) -> None:
    spec = _spec(
        argv=[sys.executable, "-c", "raise SystemExit('no config')"],
        ready={"probe": {"type": "tcp", "name": "r", "host": "127.0.0.1", "port": free_port()}, "timeout": "10s"},
    )

    async def scenario() -> None:
        proc = SupervisedProcess(spec, tmp_path, tmp_path)
        await proc.start()
        try:
            await proc.wait_ready()
        finally:
            await proc.stop()

    with pytest.raises(PreflightError, match=r"exited with code 1 before it was ready; see .*svc\.log"):
        asyncio.run(scenario())


def test_preflight_finds_missing_programs_and_folders(tmp_path: Path) -> None:
    with pytest.raises(PreflightError, match="not found on PATH"):
        preflight_process(_spec(argv=["surely-not-a-program-drillctl"]), tmp_path)
    with pytest.raises(PreflightError, match="is not a folder"):
        preflight_process(_spec(argv=["true"], cwd="missing"), tmp_path)
    preflight_process(_spec(argv=["true"]), tmp_path)
