"""Adopted targets: real processes the test starts itself (not drillctl), found, signalled, brought back,
through the drivers, a whole `drillctl run`, and the watchdog after the run is SIGKILLed mid-fault."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from orchestrator.faults.pressure import MemoryPressureDriver, marked
from orchestrator.faults.process import GcPauseDriver, NodeLossDriver
from orchestrator.journal import read_entries
from orchestrator.model.spec import FaultSpec, LocalTargets
from orchestrator.recovery import standalone_registry
from orchestrator.targets import adopted
from orchestrator.targets.adopted import AdoptError, Identity
from orchestrator.targets.local import LocalFleet, process_state
from orchestrator.toxiproxy_client import ToxiproxyClient
from orchestrator.watchdog import RUN_MARKER
from tests.fixtures.servers import Servers, adopting_drill, server_argv, serving
from tests.fixtures.toxiproxy import free_port
from tests.support import DRILLCTL, report_of, run, run_dirs, wait_while_running

FAULT = TypeAdapter(FaultSpec)


def stopped_soon(pid: int) -> bool:
    """A signal stops its target once the target is scheduled: on a loaded machine, a moment after `kill` returns."""
    deadline = time.monotonic() + 10
    while process_state(pid) != "T" and time.monotonic() < deadline:
        time.sleep(0.01)
    return process_state(pid) == "T"


def test_found_by_port_pidfile_and_command_line_and_never_a_recycled_pid(tmp_path: Path, servers: Servers) -> None:
    proc, port = servers.start()
    (tmp_path / "web.pid").write_text(f"{proc.pid}\n")
    by_port = adopted.find({"port": port})
    assert by_port[0].pid == proc.pid and by_port[0].start == adopted.start_time(proc.pid)
    assert adopted.find({"pidfile": str(tmp_path / "web.pid")}) == by_port
    assert adopted.find({"cmdline": rf"http\.server {port} "}) == by_port
    assert adopted.find({"port": free_port()}) == [] and adopted.find({"pidfile": str(tmp_path / "none")}) == []
    servers.start()
    with pytest.raises(AdoptError, match="several processes match"):
        adopted.find({"cmdline": r"-m http\.server \d+ --bind"})

    someone_else = Identity(proc.pid, by_port[0].start + 1)  # the same pid, another start time: not ours
    assert adopted.send([someone_else], signal.SIGSTOP) == []
    assert process_state(proc.pid) != "T"
    assert adopted.send(by_port, signal.SIGSTOP) == by_port
    assert stopped_soon(proc.pid)
    adopted.send(by_port, signal.SIGCONT)
    assert serving(port)


def test_a_restart_runs_detached_outside_the_run(tmp_path: Path, servers: Servers) -> None:
    port = free_port()
    servers.ports.append(port)
    os.environ[RUN_MARKER] = str(tmp_path)  # as inside a run: the restart must not carry it
    try:
        pid = asyncio.run(adopted.restart_detached(server_argv(port), str(tmp_path), str(tmp_path / "r.log")))
    finally:
        os.environ.pop(RUN_MARKER)
    wait_while_running(None, lambda: serving(port), 20, "the restarted server")
    stat = Path(f"/proc/{pid}/stat").read_text()
    ppid, _, session = stat[stat.rindex(")") + 2 :].split()[1:4]
    assert int(ppid) != os.getpid() and int(session) == pid, "not our child, in a session of its own"
    assert RUN_MARKER.encode() not in Path(f"/proc/{pid}/environ").read_bytes()
    with pytest.raises(Exception, match="cannot start"):
        asyncio.run(adopted.restart_detached(["/nonexistent/x"], str(tmp_path), str(tmp_path / "r.log")))


def _fleet(tmp_path: Path, port: int, **extra: Any) -> LocalFleet:
    targets = LocalTargets.model_validate(
        {
            "adopted": [{"name": "web", "port": port, "restart": server_argv(port), **extra}],
            "nodes": [{"name": "n", "processes": ["web"]}],
        }
    )
    return LocalFleet(targets, tmp_path, tmp_path)


def test_node_loss_of_an_adopted_process_that_vanished_before_or_during_the_fault(
    tmp_path: Path, servers: Servers
) -> None:
    proc, port = servers.start()
    fleet = _fleet(tmp_path, port)
    driver = NodeLossDriver(fleet, ToxiproxyClient("http://127.0.0.1:1"))

    async def freeze_then_lose_it() -> list[str]:
        spec = FAULT.validate_python(
            {"name": "f", "type": "node.loss", "node": "n", "mode": "freeze", "duration": "1s"}
        )
        undo = await driver.prepare(spec, "r/f")
        await driver.inject(spec, undo)
        assert stopped_soon(proc.pid)
        proc.kill()  # it vanishes during the fault
        proc.wait(10)
        return list(await driver.revert(undo) or ())

    assert asyncio.run(freeze_then_lose_it()) == [f"adopted process web (pid {proc.pid}) exited during the fault"]

    async def crash_what_is_gone() -> tuple[Any, list[str]]:
        spec = FAULT.validate_python({"name": "g", "type": "node.loss", "node": "n", "duration": "1s"})
        undo = await driver.prepare(spec, "r/g")  # nothing listens on the port: found nothing, no crash
        await driver.inject(spec, undo)
        return driver.touched(undo), list(await driver.revert(undo) or ())

    touched, notes = asyncio.run(crash_what_is_gone())
    assert touched.targets == ("process/web (not running)",)
    assert len(notes) == 1 and notes[0].startswith("adopted process web: restarted with")
    wait_while_running(None, lambda: serving(port), 20, "the restarted server")


def test_restore_false_is_never_restarted_and_a_stop_is_reverted_from_the_record_alone(
    tmp_path: Path, servers: Servers
) -> None:
    proc, port = servers.start()
    fleet = LocalFleet(
        LocalTargets.model_validate(
            {
                "adopted": [{"name": "web", "port": port, "restore": False}],
                "nodes": [{"name": "n", "processes": ["web"]}],
            }
        ),
        tmp_path,
        tmp_path,
    )
    spec = FAULT.validate_python({"name": "f", "type": "node.loss", "node": "n", "mode": "stop", "duration": "1s"})

    async def stop_it() -> list[str]:
        driver = NodeLossDriver(fleet, ToxiproxyClient("http://127.0.0.1:1"))
        undo = await driver.prepare(spec, "r/f")
        await driver.inject(spec, undo)
        assert proc.wait(10) is not None, "SIGTERM ended it"
        return list(await standalone_registry().for_undo(undo).revert(undo) or ())

    assert asyncio.run(stop_it()) == ["adopted process web: not restarted (restore: false)"]
    assert not serving(port)


def test_a_drill_kills_the_adopted_leader_its_resolver_names_and_restarts_it(tmp_path: Path, servers: Servers) -> None:
    proc, port = servers.start()
    leader = [sys.executable, "-c", f"print({port})"]  # asked at injection: the port the leader listens on
    path = adopting_drill(
        tmp_path,
        port,
        [{"name": "kill", "type": "node.loss", "node": {"command": leader, "answer": "port"}, "duration": "1s"}],
    )
    result = run("run", str(path), "--runs-dir", str(tmp_path / "runs"), "--quiet", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert proc.wait(10) == -signal.SIGKILL, "the process the test started was killed"
    assert serving(port), "and brought back by its declared restart"
    (fault,) = report_of(tmp_path / "runs")["faults"]
    assert fault["touched"][0].startswith(f"resolved n by command {sys.executable} -c print({port}) (a port) at ")
    assert f"(answer '{port}')" in fault["touched"][0]
    assert fault["touched"][1] == f"process/web (pid {proc.pid})"
    assert fault["revert_notes"][0].startswith("adopted process web: restarted with")
    (run_dir,) = run_dirs(tmp_path / "runs")
    prepared = next(e for e in read_entries(run_dir / "journal.jsonl") if e["event"] == "prepared")
    resolved = prepared["state"]["resolved"]
    assert resolved["target"] == "n" and resolved["answer"] == str(port) and 0 < resolved["elapsed"] < 5


@pytest.mark.parametrize("mode", ["freeze", "crash"])
def test_sigkill_of_drillctl_mid_fault_the_watchdog_brings_adopted_targets_back(
    tmp_path: Path, servers: Servers, mode: str
) -> None:
    proc, port = servers.start()
    path = adopting_drill(
        tmp_path, port, [{"name": "down", "type": "node.loss", "node": "n", "mode": mode, "duration": "60s"}]
    )
    runs = tmp_path / "runs"
    drillctl = subprocess.Popen(
        [DRILLCTL, "run", str(path), "--runs-dir", str(runs), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    down = (lambda: process_state(proc.pid) == "T") if mode == "freeze" else (lambda: proc.poll() is not None)
    wait_while_running(drillctl, down, 60, f"the adopted process {mode} by the drill")
    drillctl.kill()
    drillctl.communicate(timeout=30)
    (run_dir,) = run_dirs(runs)
    wait_while_running(None, lambda: (run_dir / "watchdog.json").exists(), 60, "the watchdog's rollback")
    summary = json.loads((run_dir / "watchdog.json").read_text())
    assert summary["reverted"] == [f"{run_dir.name}/down"] and not summary["revert_failed"]
    wait_while_running(None, lambda: serving(port), 20, "the adopted server serving again")
    if mode == "freeze":
        assert proc.poll() is None and process_state(proc.pid) not in ("T", "t"), "thawed, the same process"
    else:
        (back,) = adopted.find({"port": port})
        assert back.pid != proc.pid, "restarted by its declared restart"
    frozen = [pid for pid in (p.pid for p in adopted.find({"port": port})) if process_state(pid) == "T"]
    assert frozen == [], "nothing left stopped"
    time.sleep(0.5)  # the watchdog stops the run's own groups after settling: the adopted one stays
    assert serving(port)


def test_gc_pause_and_memory_pressure_act_on_an_adopted_process(tmp_path: Path, servers: Servers) -> None:
    proc, port = servers.start()
    fleet = _fleet(tmp_path, port)
    pause = FAULT.validate_python(
        {"name": "p", "type": "gc.pause", "target": "web", "pause": "300ms", "every": "400ms", "duration": "2s"}
    )
    memory = FAULT.validate_python(
        {"name": "m", "type": "memory.pressure", "target": "web", "size": "16MiB", "duration": "2s"}
    )

    async def both() -> tuple[list[str], Any]:
        gc, ballast = GcPauseDriver(fleet, 1), MemoryPressureDriver(fleet)
        paused = await gc.prepare(pause, "r/p")
        await gc.inject(pause, paused)
        held = await ballast.prepare(memory, "r/m")
        await ballast.inject(memory, held)
        states = []
        for _ in range(20):
            states.append(process_state(proc.pid) or "?")
            await asyncio.sleep(0.05)
        assert marked(held.state["marker"]), "the ballast holds its memory"
        await ballast.revert(held)
        await gc.revert(paused)
        return states, gc.touched(paused)

    states, touched = asyncio.run(both())
    assert "T" in states, f"SIGSTOPped in its pauses: {states}"
    assert touched.targets == (f"process/web (pid {proc.pid})",)
    assert process_state(proc.pid) != "T" and serving(port)
