"""gc.pause and node.loss on real local processes, each effect observed independently of the driver."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import requests
from pydantic import TypeAdapter

from orchestrator.faults.process import GcPauseDriver, NodeLossDriver, pause_schedule
from orchestrator.model.spec import FaultSpec, GcPauseFault, LocalTargets
from orchestrator.targets.local import LocalFleet, process_state
from orchestrator.toxiproxy_client import ToxiproxyClient
from tests.fixtures.toxiproxy import ToxiproxyServer, free_port
from tests.support import DRILLCTL, ROOT, drill, prepared_and_injected, report_of, samples, upstream_process, write

FAULT = TypeAdapter(FaultSpec)


def _fault(**fields: Any) -> Any:
    return FAULT.validate_python({"name": "f", "duration": "3s", **fields})


def _fleet(tmp_path: Path, **nodes: list[str]) -> tuple[LocalFleet, dict[str, int]]:
    ports = {name: free_port() for names in nodes.values() for name in names}
    targets = LocalTargets.model_validate(
        {
            "processes": [upstream_process(name, port) for name, port in ports.items()],
            "nodes": [{"name": node, "processes": names} for node, names in nodes.items()],
        }
    )
    return LocalFleet(targets, tmp_path, tmp_path), ports


@contextlib.asynccontextmanager
async def running(fleet: LocalFleet) -> AsyncIterator[None]:
    """Every process of the fleet started and ready for the block, stopped after it whatever happens."""
    try:
        for p in fleet.processes.values():
            await p.start()
        for p in fleet.processes.values():
            await p.wait_ready()
        yield
    finally:
        for p in fleet.processes.values():
            await p.stop()


def test_pause_schedule_is_seeded_and_fits_the_duration() -> None:
    spec = _fault(type="gc.pause", target="svc", pause="300ms", every="1s", jitter="100ms", duration="5s")
    assert isinstance(spec, GcPauseFault)
    first = pause_schedule(spec, 42, "run-a/f")
    assert first == pause_schedule(spec, 42, "run-b/f"), "same seed and fault name: same pauses"
    assert first != pause_schedule(spec, 43, "run-a/f")
    assert len(first) == 5
    assert all(abs(at - k) <= 0.1 + 1e-9 and at + 0.3 <= 5 for k, at in enumerate(first))


def test_gc_pause_shows_as_latency_spikes_at_its_cadence(tmp_path: Path) -> None:
    port = free_port()
    document = drill(
        targets={"local": {"processes": [upstream_process("svc", port)]}},
        steady_state={
            "interval": "20ms",
            "probes": [{"type": "http", "name": "svc", "url": f"http://127.0.0.1:{port}/stock", "timeout": "2s"}],
        },
        phases={"baseline": "1s", "fault": "4s", "recovery": "2s"},
        faults=[
            {"name": "stw", "type": "gc.pause", "target": "svc", "pause": "300ms", "every": "1s", "duration": "4s"}
        ],
    )
    path = write(tmp_path, document)
    proc = subprocess_run(path, tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = report_of(tmp_path / "runs")
    fault = report["faults"][0]
    slow = [r for r in samples(report, "svc") if r["latency"] is not None and r["latency"] >= 0.12]
    spikes: list[list[dict[str, Any]]] = []
    for r in sorted(slow, key=lambda r: r["at"]):
        if spikes and r["at"] - spikes[-1][-1]["at"] < 0.5:
            spikes[-1].append(r)
        else:
            spikes.append([r])
    starts = [s[0]["at"] - fault["injected_at"] for s in spikes]
    peaks = [max(r["latency"] for r in s) for s in spikes]
    print(f"spikes at {[round(x, 2) for x in starts]}s after injection, peaks {[round(p, 3) for p in peaks]}s")
    assert 3 <= len(spikes) <= 5
    assert all(0.2 <= p <= 0.8 for p in peaks)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(0.6 <= g <= 1.4 for g in gaps), gaps
    assert all(r["at"] < fault["reverted_at"] + 0.3 for r in slow), "no pause after revert"


def subprocess_run(path: Path, tmp_path: Path, *extra: str) -> Any:
    return subprocess.run(
        [DRILLCTL, "run", str(path), "--runs-dir", str(tmp_path / "runs"), "--quiet", *extra],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def test_revert_mid_pause_leaves_every_process_running(tmp_path: Path) -> None:
    fleet, _ = _fleet(tmp_path, node=["a", "b"])
    spec = _fault(type="gc.pause", target="node", pause="2s", every="3s", duration="6s")
    driver = GcPauseDriver(fleet, seed=1)

    async def scenario() -> tuple[list[str | None], list[str | None]]:
        async with running(fleet):
            undo = await prepared_and_injected(driver, spec, "run/f")
            await asyncio.sleep(0.5)  # inside the first 2s pause
            during = [process_state(pid) for p in fleet.processes.values() for pid in p.group_pids()]
            await driver.revert(undo)
            await asyncio.sleep(0.1)
            after = [process_state(pid) for p in fleet.processes.values() for pid in p.group_pids()]
            return during, after

    during, after = asyncio.run(scenario())
    assert during and set(during) == {"T"}
    assert after and set(after) <= {"R", "S"}


@pytest.mark.parametrize("mode", ["crash", "stop", "freeze"])
def test_node_loss_takes_the_whole_node_down_and_brings_it_back(tmp_path: Path, mode: str) -> None:
    fleet, ports = _fleet(tmp_path, primary=["a", "b"], replica=["c"])
    spec = _fault(type="node.loss", node="primary", mode=mode, grace="1s")
    driver = NodeLossDriver(fleet, ToxiproxyClient("http://127.0.0.1:9"))

    def answers(name: str) -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{ports[name]}/healthz", timeout=0.3).ok
        except requests.RequestException:
            return False

    async def scenario() -> tuple[dict[str, bool], dict[str, bool]]:
        async with running(fleet):
            undo = await prepared_and_injected(driver, spec, "run/f")
            down = {n: await asyncio.to_thread(answers, n) for n in ports}
            await driver.revert(undo)
            await driver.revert(undo)  # idempotent
            for n in ("a", "b"):
                await fleet.processes[n].wait_ready()
            back = {n: await asyncio.to_thread(answers, n) for n in ports}
            return down, back

    down, back = asyncio.run(scenario())
    assert down == {"a": False, "b": False, "c": True}
    assert back == {"a": True, "b": True, "c": True}


def test_isolate_disables_the_proxies_in_front_of_the_node(tmp_path: Path, toxiproxy: ToxiproxyServer) -> None:
    port = free_port()
    requests.post(
        toxiproxy.url + "/proxies",
        json={"name": "to-a", "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{port}"},
        timeout=5,
    ).raise_for_status()
    targets = LocalTargets.model_validate(
        {"processes": [upstream_process("a", port)], "nodes": [{"name": "n", "processes": ["a"], "proxies": ["to-a"]}]}
    )
    fleet = LocalFleet(targets, tmp_path, tmp_path)
    driver = NodeLossDriver(fleet, ToxiproxyClient(toxiproxy.url))
    spec = _fault(type="node.loss", node="n", mode="isolate")

    async def scenario() -> tuple[bool, bool]:
        undo = await prepared_and_injected(driver, spec, "run/f")
        during = bool(toxiproxy.get("/proxies/to-a").json()["enabled"])
        await driver.revert(undo)
        return during, bool(toxiproxy.get("/proxies/to-a").json()["enabled"])

    assert asyncio.run(scenario()) == (False, True)


def test_failover_demo_recovers_within_its_window_and_drillctl_measures_it(tmp_path: Path) -> None:
    result = subprocess_run(ROOT / "drills" / "examples" / "failover.yaml", tmp_path)
    report = report_of(tmp_path / "runs")
    sla = next(s for s in report["slas"] if s["name"] == "orders-fail-over-fast")
    fault = report["faults"][0]
    print(f"failover window measured {sla['measured']:.3f}s (limit {sla['threshold']}s)")
    assert result.returncode == 0, result.stdout + result.stderr
    assert sla["passed"] and 0 < sla["measured"] <= 2.0
    assert fault["type"] == "node.loss" and fault["params"]["mode"] == "crash"
    assert fault["runbook"]["heading"] == "Primary lost"
    orders = samples(report, "orders")
    failed_during = [r for r in orders if not r["ok"] and fault["injected_at"] <= r["at"] <= fault["reverted_at"]]
    assert failed_during, "losing the primary must cost some requests before failover"


def test_restore_false_leaves_the_node_down_until_the_drill_ends(tmp_path: Path) -> None:
    port, other = free_port(), free_port()
    document = drill(
        targets={
            "local": {
                "processes": [upstream_process("a", port), upstream_process("b", other)],
                "nodes": [{"name": "n", "processes": ["a"]}],
            }
        },
        steady_state={
            "interval": "50ms",
            "probes": [
                {"type": "tcp", "name": "a-port", "host": "127.0.0.1", "port": port, "timeout": "200ms"},
            ],
        },
        phases={"baseline": "1s", "fault": "1s", "recovery": "2s"},
        faults=[{"name": "gone", "type": "node.loss", "node": "n", "mode": "stop", "duration": "1s", "restore": False}],
    )
    result = subprocess_run(write(tmp_path, document), tmp_path)
    report = report_of(tmp_path / "runs")
    fault = report["faults"][0]
    recovery = [r for r in samples(report, "a-port") if r["phase"] == "recovery"]
    assert recovery and not any(r["ok"] for r in recovery), "nobody restarted the node during recovery"
    assert fault["reverted_at"] >= report["phases"][-1]["end"] - 0.01, "the final rollback restored it"
    assert result.returncode == 0, result.stderr


def test_freeze_uses_the_cgroup_freezer_and_thaws_from_the_record_alone(tmp_path: Path) -> None:
    port = free_port()
    targets = LocalTargets.model_validate(
        {
            "processes": [{**upstream_process("a", port), "memory_limit": "256MiB"}],
            "nodes": [{"name": "n", "processes": ["a"]}],
        }
    )
    fleet = LocalFleet(targets, tmp_path, tmp_path)
    spec = _fault(type="node.loss", node="n", mode="freeze")

    def answers() -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).ok
        except requests.RequestException:
            return False

    async def scenario() -> tuple[bool, bool, bool, bool]:
        proc = fleet.processes["a"]
        await proc.start()
        try:
            await proc.wait_ready()
            driver = NodeLossDriver(fleet, ToxiproxyClient("http://127.0.0.1:9"))
            undo = await prepared_and_injected(driver, spec, "run/f")
            assert proc.cgroup is not None
            frozen, during = proc.cgroup.frozen(), await asyncio.to_thread(answers)
            # A driver of another process (the watchdog's) has only the record.
            empty = LocalFleet(LocalTargets(), tmp_path, tmp_path)
            await NodeLossDriver(empty, ToxiproxyClient("http://127.0.0.1:9")).revert(undo)
            await asyncio.sleep(0.1)
            return frozen, during, proc.cgroup.frozen(), await asyncio.to_thread(answers)
        finally:
            await proc.stop()

    frozen, during, still_frozen, after = asyncio.run(scenario())
    assert (frozen, during) == (True, False)
    assert (still_frozen, after) == (False, True)
