"""clock.skew against the demo upstream running under the real libfaketime: what the target sees.

The target reports its own wall and monotonic clocks on /time; every comparison is with the
test's clocks, with tolerances loose enough for a loaded 2-core machine.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from pydantic import TypeAdapter

from orchestrator.errors import PreflightError
from orchestrator.faults.base import touched
from orchestrator.faults.clock import ClockSkewDriver
from orchestrator.faults.registry import build_registry
from orchestrator.faults.resolving import ResolvingDriver
from orchestrator.model.spec import ClockSkewFault, LocalProcess, LocalTargets
from orchestrator.model.undo import Undo
from orchestrator.recovery import standalone_registry
from orchestrator.runner import UNUSED_TOXIPROXY
from orchestrator.targets import faketime
from orchestrator.targets.local import LocalFleet
from orchestrator.toxiproxy_client import ToxiproxyClient
from tests.fixtures.toxiproxy import free_port
from tests.support import DRILLCTL, drill, report_of, run, run_dirs, upstream_process, write

FAULT = TypeAdapter(ClockSkewFault)
TOLERANCE = 1.0


def _fault(**fields: Any) -> ClockSkewFault:
    return FAULT.validate_python(
        {"name": "skew", "type": "clock.skew", "target": "upstream", "duration": "1m", **fields}
    )


def _faketime_upstream(port: int, fake_monotonic: bool = False) -> dict[str, Any]:
    return {**upstream_process("upstream", port), "clock": "faketime", "fake_monotonic": fake_monotonic}


def _fleet(tmp_path: Path, port: int, fake_monotonic: bool = False) -> LocalFleet:
    spec = LocalProcess.model_validate(_faketime_upstream(port, fake_monotonic))
    return LocalFleet(LocalTargets(processes=[spec]), tmp_path, tmp_path / "run")


class Reading:
    """One /time answer from the target, with the test's own clocks read around it."""

    def __init__(self, port: int) -> None:
        before_wall, before_mono = time.time(), time.monotonic()
        body = requests.get(f"http://127.0.0.1:{port}/time", timeout=10).json()
        after_wall, after_mono = time.time(), time.monotonic()
        self.wall: float = body["wall"]
        self.monotonic: float = body["monotonic"]
        self.host_wall = (before_wall + after_wall) / 2
        self.host_mono = (before_mono + after_mono) / 2

    @property
    def skew(self) -> float:
        return self.wall - self.host_wall


def _with_upstream(
    tmp_path: Path, scenario: Callable[[LocalFleet, int], Awaitable[None]], fake_monotonic: bool = False
) -> None:
    port = free_port()
    fleet = _fleet(tmp_path, port, fake_monotonic)

    async def main() -> None:
        proc = fleet.processes["upstream"]
        await proc.start()
        try:
            await proc.wait_ready()
            await scenario(fleet, port)
        finally:
            await proc.stop()

    asyncio.run(main())


def test_skew_ahead_moves_only_the_targets_wall_clock_and_revert_brings_it_back(tmp_path: Path) -> None:
    async def scenario(fleet: LocalFleet, port: int) -> None:
        driver = ClockSkewDriver(fleet)
        fault = _fault(offset="+90s")
        await driver.preflight(fault)
        before = Reading(port)
        assert abs(before.skew) < TOLERANCE
        undo = await driver.prepare(fault, "run/skew")
        assert undo.state["clocks"][0]["previous"] == faketime.NO_SKEW
        await driver.inject(fault, undo)
        during = Reading(port)
        print(f"skew before {before.skew:+.3f}s, during {during.skew:+.3f}s")
        assert abs(during.skew - 90) < TOLERANCE
        host_elapsed = during.host_mono - before.host_mono
        assert abs((during.host_wall - before.host_wall) - host_elapsed) < TOLERANCE, "the host clock moved"
        assert abs((during.monotonic - before.monotonic) - host_elapsed) < TOLERANCE, "monotonic jumped"
        await driver.revert(undo)
        after = Reading(port)
        assert abs(after.skew) < TOLERANCE
        assert abs((after.monotonic - before.monotonic) - (after.host_mono - before.host_mono)) < TOLERANCE
        assert faketime.read_offset(Path(undo.state["clocks"][0]["file"])) == "+0"

    _with_upstream(tmp_path, scenario)


def test_a_command_resolver_naming_a_node_skews_every_process_of_it_and_no_other(tmp_path: Path) -> None:
    """Real libfaketime processes in two nodes; the command (run in the drill's folder) names n2 at injection."""
    ports = {"a": free_port(), "b": free_port(), "c": free_port()}
    targets = LocalTargets.model_validate(
        {
            "processes": [
                _faketime_upstream(ports["a"]) | {"name": "a"},
                _faketime_upstream(ports["b"]) | {"name": "b"},
                upstream_process("c", ports["c"]),
            ],
            "nodes": [
                {"name": "n1", "processes": ["a"]},
                {"name": "n2", "processes": ["b"]},
                {"name": "n3", "processes": ["c"]},
            ],
        }
    )
    fleet = LocalFleet(targets, tmp_path, tmp_path / "run")
    registry = build_registry(ToxiproxyClient(UNUSED_TOXIPROXY), fleet)
    (tmp_path / "leader").write_text("n2\n")
    fault = _fault(offset="+90s", target={"command": ["cat", "leader"], "timeout": "5s"})
    driver = registry.for_fault(fault)
    assert isinstance(driver, ResolvingDriver)

    async def scenario() -> None:
        await driver.check_targets(fault)
        undo = await driver.prepare(fault, "run/skew")
        assert undo.state["resolved"]["target"] == "n2"
        assert [c["process"] for c in undo.state["clocks"]] == ["b"]
        await driver.inject(fault, undo)
        skews = {name: Reading(port).skew for name, port in ports.items()}
        print(f"skews while n2 is skewed: {skews}")
        assert abs(skews["b"] - 90) < TOLERANCE and abs(skews["a"]) < TOLERANCE and abs(skews["c"]) < TOLERANCE
        line, *processes = touched(driver, undo).targets
        assert line.startswith("resolved n2 by command cat leader at ") and processes == ["process/b"]
        assert "wall clock of <command cat leader> shifted by +90s" in driver.describe(fault)

        # the revert needs the record alone (the watchdog's, drillctl recover's), and is idempotent
        record = Undo.from_json(json.loads(json.dumps(undo.to_json())))
        await standalone_registry().for_undo(record).revert(record)
        await driver.revert(undo)
        assert all(abs(Reading(port).skew) < TOLERANCE for port in ports.values())

        (tmp_path / "leader").write_text("n3\n")
        with pytest.raises(PreflightError, match="node n3: process c was not started under libfaketime"):
            await driver.check_targets(fault)

    async def main() -> None:
        for proc in fleet.processes.values():
            await proc.start()
        try:
            await asyncio.gather(*(proc.wait_ready() for proc in fleet.processes.values()))
            await scenario()
        finally:
            await asyncio.gather(*(proc.stop() for proc in fleet.processes.values()))

    asyncio.run(main())


def test_negative_offset_puts_the_clock_behind(tmp_path: Path) -> None:
    async def scenario(fleet: LocalFleet, port: int) -> None:
        driver = ClockSkewDriver(fleet)
        fault = _fault(offset="-5m")
        undo = await driver.prepare(fault, "run/skew")
        await driver.inject(fault, undo)
        during = Reading(port)
        print(f"skew during {during.skew:+.3f}s")
        assert abs(during.skew + 300) < TOLERANCE
        await driver.revert(undo)
        assert abs(Reading(port).skew) < TOLERANCE

    _with_upstream(tmp_path, scenario)


def test_drift_runs_the_clock_at_that_rate_from_the_requested_offset(tmp_path: Path) -> None:
    """libfaketime counts a rate from process start; the driver corrects for the target's age."""

    async def scenario(fleet: LocalFleet, port: int) -> None:
        await asyncio.sleep(2.0)  # an older process: uncorrected, x1.5 would add a second or more
        driver = ClockSkewDriver(fleet)
        fault = _fault(offset="+30s", drift=1.5)
        undo = await driver.prepare(fault, "run/skew")
        await driver.inject(fault, undo)
        first = Reading(port)
        await asyncio.sleep(3.0)
        second = Reading(port)
        rate = (second.wall - first.wall) / (second.host_mono - first.host_mono)
        print(f"skew at injection {first.skew:+.3f}s, rate {rate:.3f}")
        assert abs(first.skew - 30) < TOLERANCE
        assert 1.35 < rate < 1.65
        await driver.revert(undo)
        assert faketime.read_offset(Path(undo.state["clocks"][0]["file"])) == "+0 x1", "a rate stays until x1 ends it"
        third = Reading(port)
        await asyncio.sleep(2.0)
        fourth = Reading(port)
        assert abs(third.skew) < TOLERANCE and abs(fourth.skew) < TOLERANCE
        assert 0.9 < (fourth.wall - third.wall) / (fourth.host_mono - third.host_mono) < 1.1

    _with_upstream(tmp_path, scenario)


def test_with_fake_monotonic_libfaketime_makes_monotonic_the_faked_wall_clock(tmp_path: Path) -> None:
    """libfaketime 0.9.10 returns origin + offset + elapsed for CLOCK_MONOTONIC: epoch-scale, and it jumps."""

    async def scenario(fleet: LocalFleet, port: int) -> None:
        driver = ClockSkewDriver(fleet)
        before = Reading(port)
        assert abs(before.monotonic - before.wall) < TOLERANCE
        assert before.monotonic > 1e9 > time.monotonic()
        fault = _fault(offset="+90s")
        undo = await driver.prepare(fault, "run/skew")
        await driver.inject(fault, undo)
        during = Reading(port)
        jump = (during.monotonic - before.monotonic) - (during.host_mono - before.host_mono)
        print(f"monotonic jumped {jump:+.3f}s")
        assert abs(jump - 90) < TOLERANCE
        await driver.revert(undo)
        after = Reading(port)
        back = (after.monotonic - before.monotonic) - (after.host_mono - before.host_mono)
        assert abs(back) < TOLERANCE, "and it jumps back (backwards) on revert"

    _with_upstream(tmp_path, scenario, fake_monotonic=True)


def test_revert_is_idempotent_and_restores_what_was_there(tmp_path: Path) -> None:
    fleet = _fleet(tmp_path, free_port())
    offset_file = fleet.processes["upstream"].offset_file
    assert offset_file is not None
    offset_file.parent.mkdir(parents=True)
    faketime.write_offset(offset_file, "+30")
    driver = ClockSkewDriver(fleet)

    async def scenario() -> None:
        fault = _fault(offset="-90s")
        undo = await driver.prepare(fault, "run/skew")
        clock = {"process": "upstream", "file": str(offset_file), "previous": "+30"}
        assert undo.state == {"target": "upstream", "clocks": [clock], "sets_rate": False}
        json.dumps(undo.to_json())  # journaled as plain data
        await driver.inject(fault, undo)
        assert faketime.read_offset(offset_file) == "-90"
        await driver.revert(undo)
        await driver.revert(undo)
        assert faketime.read_offset(offset_file) == "+30"

        # a record journaled before nodes could be skewed holds its one clock at the top
        await driver.inject(fault, undo)
        await driver.revert(Undo(driver.name, "run/old", {**clock, "sets_rate": False}))
        assert faketime.read_offset(offset_file) == "+30"

        drifting = _fault(offset="+1m", drift=1.25)
        undo = await driver.prepare(drifting, "run/drift")
        await driver.inject(drifting, undo)
        assert faketime.read_offset(offset_file) == "+60 x1.25"
        await driver.revert(undo)
        await driver.revert(undo)
        assert faketime.read_offset(offset_file) == "+30 x1"

        offset_file.unlink()
        offset_file.parent.rmdir()
        await driver.revert(undo)

    asyncio.run(scenario())


def test_preflight_refuses_a_process_without_faketime(tmp_path: Path) -> None:
    spec = LocalProcess.model_validate(upstream_process("upstream", free_port()))
    driver = ClockSkewDriver(LocalFleet(LocalTargets(processes=[spec]), tmp_path, tmp_path))
    with pytest.raises(PreflightError, match="clock: faketime"):
        asyncio.run(driver.preflight(_fault(offset="+90s")))


# --- drillctl end to end ------------------------------------------------------------------------


def _clock_drill(tmp_path: Path, port: int, fault_phase: str, duration: str, **process: Any) -> Path:
    """A drill skewing the upstream +90s, with its runbook next to it."""
    (tmp_path / "runbooks").mkdir(exist_ok=True)
    (tmp_path / "runbooks" / "clock.md").write_text("# Clock\n\n## Clock ahead\n\nCheck NTP.\n")
    document = drill(
        targets={"local": {"processes": [{**_faketime_upstream(port), **process}]}},
        steady_state={
            "interval": "200ms",
            "tolerance": 0.5,
            "probes": [{"type": "http", "name": "stock", "url": f"http://127.0.0.1:{port}/stock", "timeout": "3s"}],
        },
        phases={"baseline": "1s", "fault": fault_phase, "recovery": "5s"},
        faults=[
            {
                "name": "ahead",
                "type": "clock.skew",
                "target": "upstream",
                "offset": "+90s",
                "duration": duration,
                "runbook": "runbooks/clock.md#clock-ahead",
            }
        ],
    )
    return write(tmp_path, document)


def test_drillctl_run_reports_the_skew_and_plan_lists_it(tmp_path: Path) -> None:
    path = _clock_drill(tmp_path, free_port(), "3s", "2s")
    planned = run("plan", str(path), "-o", "json")
    assert planned.returncode == 0, planned.stderr
    (step,) = [s for s in json.loads(planned.stdout)["schedule"] if s.get("fault") == "ahead"]
    assert step["type"] == "clock.skew" and "+90s" in step["what"] and "upstream" in step["what"]

    runs = tmp_path / "runs"
    result = run("run", str(path), "--runs-dir", str(runs), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    report = report_of(runs)
    (fault,) = report["faults"]
    assert fault["type"] == "clock.skew"
    assert fault["params"] == {"start": 0.0, "duration": 2.0, "scope": "process", "target": "upstream", "offset": 90.0}
    assert fault["injected_at"] is not None and fault["reverted_at"] is not None
    assert 1.5 < fault["reverted_at"] - fault["injected_at"] < 4.0
    assert fault["runbook"]["ref"] == "runbooks/clock.md#clock-ahead"
    assert fault["runbook"]["heading"] == "Clock ahead"
    (run_dir,) = run_dirs(runs)
    assert faketime.read_offset(run_dir / "faketime" / "upstream.offset") == "+0"


def test_sigint_while_skewed_reverts_the_offset_and_exits_4(tmp_path: Path) -> None:
    port = free_port()
    path = _clock_drill(tmp_path, port, "60s", "60s")
    runs = tmp_path / "runs"
    proc = subprocess.Popen(
        [DRILLCTL, "run", str(path), "--runs-dir", str(runs), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while True:
        assert time.monotonic() < deadline and proc.poll() is None, "the skew was never injected"
        offsets = list(runs.glob("*/faketime/upstream.offset"))
        if offsets and faketime.read_offset(offsets[0]) == "+90":
            break
        time.sleep(0.1)
    assert abs(Reading(port).skew - 90) < TOLERANCE
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 4, out + err
    assert faketime.read_offset(offsets[0]) == "+0"
    report = report_of(runs)
    assert report["run"]["status"] == "aborted" and "SIGINT" in report["run"]["reason"]
    assert report["rollback"]["failed"] == [] and len(report["rollback"]["reverted"]) == 1
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


def test_skew_on_a_process_without_faketime_is_a_spec_error_and_starts_nothing(tmp_path: Path) -> None:
    port = free_port()
    path = _clock_drill(tmp_path, port, "3s", "2s", clock="real")
    line = 1 + next(i for i, text in enumerate(path.read_text().splitlines()) if text.strip() == "target: upstream")
    runs = tmp_path / "runs"
    result = run("run", str(path), "--runs-dir", str(runs), "--quiet")
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{path}:{line}: spec.faults[0].target:" in result.stderr
    assert "clock: faketime" in result.stderr
    assert not runs.exists()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
