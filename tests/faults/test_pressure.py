"""memory.pressure on real processes: the held memory is seen by the kernel (cgroup or /proc), then released."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from orchestrator.errors import PreflightError
from orchestrator.faults.pressure import MemoryPressureDriver, available_memory, marked
from orchestrator.model.spec import FaultSpec, LocalTargets
from orchestrator.model.undo import Undo
from orchestrator.targets.cgroups import MemoryCgroup, detect, joiner, memory_cgroup_of, memory_usage
from orchestrator.targets.local import LocalFleet, alive
from tests.fixtures.toxiproxy import ToxiproxyServer, free_port
from tests.support import DRILLCTL, drill, prepared_and_injected, report_of, run, upstream_process, write

MiB = 1 << 20
SIZE = 128 * MiB
FAULT = TypeAdapter(FaultSpec)
SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def _fault(**fields: Any) -> Any:
    return FAULT.validate_python({"name": "squeeze", "type": "memory.pressure", "target": "svc", **fields})


def _fleet(tmp_path: Path, memory_limit: str | None) -> LocalFleet:
    process: dict[str, Any] = {"name": "svc", "argv": SLEEPER}
    if memory_limit is not None:
        process["memory_limit"] = memory_limit
    run_dir = tmp_path / f"run-{time.monotonic_ns()}"
    return LocalFleet(LocalTargets.model_validate({"processes": [process]}), tmp_path, run_dir)


def _rss(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(x for x in status.splitlines() if x.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def _session(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[3])


def _with_target(fleet: LocalFleet, body: Callable[[], Awaitable[None]]) -> None:
    async def scenario() -> None:
        proc = fleet.processes["svc"]
        await proc.start()
        try:
            await body()
        finally:
            await proc.stop()

    asyncio.run(scenario())


def test_held_inside_the_targets_cgroup_then_released(tmp_path: Path) -> None:
    fleet = _fleet(tmp_path, "512MiB")
    driver = MemoryPressureDriver(fleet)
    spec = _fault(size="25%", duration="5s")
    cgroup = fleet.processes["svc"].cgroup
    assert cgroup is not None

    async def body() -> None:
        await driver.preflight(spec)
        await asyncio.sleep(0.3)
        before = cgroup.memory_current()
        undo = await prepared_and_injected(driver, spec, "run/squeeze")
        await asyncio.sleep(0.5)
        during = cgroup.memory_current()
        (ballast,) = marked(undo.state["marker"])
        assert ballast in cgroup.pids(), "the ballast runs inside the target's cgroup"
        await driver.revert(undo)
        await asyncio.sleep(0.2)
        after = cgroup.memory_current()
        print(f"cgroup memory: before {before / MiB:.1f}MiB, held {during / MiB:.1f}MiB, after {after / MiB:.1f}MiB")
        assert abs((during - before) - SIZE) <= 0.2 * SIZE
        assert after - before <= 0.2 * SIZE
        assert marked(undo.state["marker"]) == []

    _with_target(fleet, body)


def test_held_beside_a_target_without_a_limit_as_resident_memory(tmp_path: Path) -> None:
    fleet = _fleet(tmp_path, None)
    driver = MemoryPressureDriver(fleet)
    spec = _fault(size="128MiB", duration="5s")

    async def body() -> None:
        undo = await driver.prepare(spec, "run/squeeze")
        assert (
            undo.state["join"] == []
            and undo.state["placement"] == "beside process svc, machine-wide: it has no memory_limit"
        )
        await driver.inject(spec, undo)
        await asyncio.sleep(0.3)
        (ballast,) = marked(undo.state["marker"])
        rss = _rss(ballast)
        print(f"ballast RSS {rss / MiB:.1f}MiB for a size of {SIZE / MiB:.0f}MiB")
        assert abs(rss - SIZE) <= 0.2 * SIZE
        assert _session(ballast) == ballast, "in a session of its own"
        await driver.revert(undo)
        assert not alive(ballast)

    _with_target(fleet, body)


def test_ramp_reaches_the_size_gradually(tmp_path: Path) -> None:
    fleet = _fleet(tmp_path, None)
    driver = MemoryPressureDriver(fleet)
    spec = _fault(size="128MiB", ramp="2s", duration="5s")

    async def body() -> None:
        undo = await driver.prepare(spec, "run/squeeze")
        began = time.monotonic()
        await driver.inject(spec, undo)
        (ballast,) = marked(undo.state["marker"])
        seen: list[tuple[float, int]] = []
        while time.monotonic() - began < 3.0:
            seen.append((time.monotonic() - began, _rss(ballast)))
            await asyncio.sleep(0.1)
        await driver.revert(undo)
        print(" ".join(f"{at:.1f}s:{rss / MiB:.0f}MiB" for at, rss in seen))
        # Never ahead of the 2 s ramp (the ballast starts after `began`, so it can only be behind it, and a
        # loaded machine only delays the readings; its interpreter is about 15 MiB), seen on its way, and there
        # by the end.
        assert all(rss <= SIZE * min(1.0, (at + 0.2) / 2.0) + 20 * MiB for at, rss in seen), "never ahead"
        assert any(0.2 * SIZE <= rss <= 0.8 * SIZE for _, rss in seen), "gradually, not at once"
        assert seen[-1][1] >= 0.8 * SIZE
        assert all(b[1] >= a[1] - 2 * MiB for a, b in itertools.pairwise(seen)), "never drops"

    _with_target(fleet, body)


def test_revert_from_the_record_alone_kills_the_ballast_and_is_idempotent(tmp_path: Path) -> None:
    fleet = _fleet(tmp_path, None)
    spec = _fault(size="64MiB", duration="5s")

    async def body() -> None:
        injector = MemoryPressureDriver(fleet)
        undo = await injector.prepare(spec, "run/squeeze")
        await injector.inject(spec, undo)
        (ballast,) = marked(undo.state["marker"])
        record = Undo.from_json(json.loads(json.dumps(undo.to_json())))
        other_process = MemoryPressureDriver(_fleet(tmp_path, None))
        await other_process.revert(record)
        assert marked(undo.state["marker"]) == [] and not alive(ballast)
        await other_process.revert(record)
        await injector.revert(undo)

    _with_target(fleet, body)


def test_more_than_90_percent_of_free_memory_needs_force(tmp_path: Path) -> None:
    fleet = _fleet(tmp_path, None)
    driver = MemoryPressureDriver(fleet)
    too_much = f"{int(available_memory() * 0.95) // MiB}MiB"
    with pytest.raises(PreflightError, match=r"above 90% of the .* available; set force: true"):
        asyncio.run(driver.preflight(_fault(size=too_much, duration="1s")))
    asyncio.run(driver.preflight(_fault(size=too_much, duration="1s", force=True)))
    asyncio.run(driver.preflight(_fault(size="64MiB", duration="1s")))


def test_drill_end_to_end_reports_the_fault_and_leaves_nothing_behind(
    tmp_path: Path, toxiproxy: ToxiproxyServer
) -> None:
    runbooks = tmp_path / "runbooks"
    runbooks.mkdir()
    (runbooks / "memory.md").write_text("# Memory\n\n## Memory pressure\n\nShed load.\n")
    port = free_port()
    target = {**upstream_process("upstream", port), "memory_limit": "256MiB"}
    document = drill(
        targets={"local": {"processes": [target]}},
        steady_state={
            "interval": "100ms",
            "probes": [{"type": "http", "name": "up", "url": f"http://127.0.0.1:{port}/healthz"}],
        },
        phases={"baseline": "1s", "fault": "3s", "recovery": "2s"},
        faults=[
            {
                "name": "squeeze",
                "type": "memory.pressure",
                "target": "upstream",
                "size": "50%",
                "start": "500ms",
                "duration": "2s",
                "runbook": "runbooks/memory.md#memory-pressure",
            }
        ],
    )
    path = write(tmp_path, document)
    runs = tmp_path / "runs"
    layout = detect()
    parent = layout.memory
    usage = "memory.current" if layout.version == 2 else "memory.usage_in_bytes"
    proc = subprocess.Popen(
        [DRILLCTL, "run", str(path), "--runs-dir", str(runs), "--toxiproxy-url", toxiproxy.url, "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak = 0
    while proc.poll() is None:
        for group in parent.glob("drillctl-*-upstream"):
            with contextlib.suppress(OSError):
                peak = max(peak, int((group / usage).read_text()))
        time.sleep(0.1)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    report = report_of(runs)
    run_id = report["run"]["id"]
    print(f"peak memory of the upstream's cgroup during the drill: {peak / MiB:.1f}MiB")
    assert peak >= 0.8 * 128 * MiB
    (fault,) = report["faults"]
    assert fault["name"] == "squeeze" and fault["type"] == "memory.pressure"
    assert fault["params"]["size"] == "50%" and fault["params"]["target"] == "upstream"
    assert fault["params"]["start"] == 0.5 and fault["params"]["duration"] == 2.0
    assert fault["injected_at"] is not None and fault["reverted_at"] is not None
    assert 1.8 <= fault["reverted_at"] - fault["injected_at"] <= 3.0
    assert fault["runbook"]["ref"] == "runbooks/memory.md#memory-pressure"
    assert fault["runbook"]["heading"] == "Memory pressure"
    assert fault["error"] is None
    assert not list(parent.glob(f"drillctl-{run_id}-*")), "the target's cgroup is removed at teardown"
    assert marked(f"drillctl-ballast-{run_id}-squeeze") == []


# --- adopted targets: charged to their own memory cgroup when they have one -------------------------------------


@contextlib.contextmanager
def _memory_cgroup(name: str, limit: int) -> Iterator[MemoryCgroup]:
    """A memory cgroup of the test's own making below its own (where drillctl creates its targets'), removed after."""
    own = memory_cgroup_of()
    directory = own.directory / name
    directory.mkdir()
    (directory / ("memory.max" if own.version == 2 else "memory.limit_in_bytes")).write_text(str(limit))
    try:
        yield MemoryCgroup(f"{own.path.rstrip('/')}/{name}", directory, own.version)
    finally:
        deadline = time.monotonic() + 10
        while True:
            try:
                directory.rmdir()
                break
            except OSError:  # EBUSY until its last process has gone
                assert time.monotonic() < deadline, f"{directory} still busy"
                time.sleep(0.05)


def _adopted_sleeper(tmp_path: Path, join: Path | None) -> tuple[subprocess.Popen[bytes], LocalFleet]:
    """A process the test starts itself (in `join`'s cgroup when given), adopted by its command line."""
    marker = f"drillctl-test-{tmp_path.name}"
    argv = [sys.executable, "-c", "import time, sys; time.sleep(120)", marker]
    proc = subprocess.Popen(
        argv, start_new_session=True, preexec_fn=None if join is None else joiner([str(join / "cgroup.procs")])
    )
    targets = LocalTargets.model_validate({"adopted": [{"name": "svc", "cmdline": marker, "restore": False}]})
    return proc, LocalFleet(targets, tmp_path, tmp_path / "run")


def test_an_adopted_target_in_a_memory_cgroup_of_its_own_is_charged_the_pressure(tmp_path: Path) -> None:
    with _memory_cgroup(f"drillctl-test-{time.monotonic_ns()}", 512 * MiB) as cgroup:
        proc, fleet = _adopted_sleeper(tmp_path, cgroup.directory)
        try:
            where = (
                f"inside the memory cgroup of adopted process svc (pid {proc.pid}), {cgroup.directory} (limit 512MiB), "
                "charged to it"
            )
            driver = MemoryPressureDriver(fleet)
            spec = _fault(size="128MiB", duration="5s")
            assert driver.describe(spec) == f"hold 128MiB resident {where}, for 5s"
            with pytest.raises(
                PreflightError, match=r"above the limit of the cgroup it would be charged to \(512MiB\)"
            ):
                asyncio.run(driver.preflight(_fault(size="600MiB", duration="5s")))

            async def squeeze() -> tuple[int, int, int]:
                await driver.preflight(spec)
                before = memory_usage(cgroup.directory, cgroup.version)
                undo = await prepared_and_injected(driver, spec, "run/squeeze")
                await asyncio.sleep(0.5)
                during = memory_usage(cgroup.directory, cgroup.version)
                (ballast,) = marked(undo.state["marker"])
                assert ballast in {int(p) for p in (cgroup.directory / "cgroup.procs").read_text().split()}
                assert driver.touched(undo).targets == (f"process/svc (pid {proc.pid})", f"ballast {where}")
                # reverted from the record alone (the watchdog's, drillctl recover's), idempotently
                record = Undo.from_json(json.loads(json.dumps(undo.to_json())))
                await MemoryPressureDriver(LocalFleet(LocalTargets(), tmp_path, tmp_path)).revert(record)
                await driver.revert(undo)
                assert marked(undo.state["marker"]) == [] and not alive(ballast)
                return before, during, memory_usage(cgroup.directory, cgroup.version)

            before, during, after = asyncio.run(squeeze())
            print(
                f"target's cgroup: before {before / MiB:.1f}MiB, held {during / MiB:.1f}MiB, after {after / MiB:.1f}MiB"
            )
            assert abs((during - before) - SIZE) <= 0.2 * SIZE, "the target's cgroup is charged about the size"
            assert after - before <= 0.2 * SIZE, "and no longer once reverted"
        finally:
            proc.kill()
            proc.wait(timeout=10)


def test_an_adopted_target_without_a_memory_cgroup_of_its_own_is_said_to_share_it(tmp_path: Path) -> None:
    """In the cgroup drillctl runs in (the test's), the ballast stays there: the plan and the record say so."""
    proc, fleet = _adopted_sleeper(tmp_path, None)
    ours = memory_cgroup_of()
    try:
        document = drill(
            targets={
                "local": {"adopted": [{"name": "svc", "cmdline": f"drillctl-test-{tmp_path.name}", "restore": False}]}
            },
            steady_state={"probes": [{"type": "tcp", "name": "p", "host": "127.0.0.1", "port": free_port()}]},
            faults=[{"name": "squeeze", "type": "memory.pressure", "target": "svc", "size": "64MiB", "duration": "2s"}],
        )
        planned = run("plan", str(write(tmp_path, document)))
        assert planned.returncode == 0, planned.stderr
        limit = ours.limit()
        bound = "no limit: machine-wide" if limit is None else f"limit {limit / MiB:.0f}MiB"
        shared = (
            f"beside adopted process svc (pid {proc.pid}), in drillctl's own memory cgroup {ours.directory}, which it "
            f"shares ({bound}): charged to drillctl as much as to it"
        )
        assert f"hold 64MiB resident {shared}, for 2s" in planned.stdout
        undo = asyncio.run(MemoryPressureDriver(fleet).prepare(_fault(size="64MiB", duration="2s"), "run/squeeze"))
        assert undo.state["join"] == [] and undo.state["placement"] == shared
    finally:
        proc.kill()
        proc.wait(timeout=10)
