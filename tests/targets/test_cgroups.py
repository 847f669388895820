"""Cgroups on this machine's real hierarchy: create, join, limit, read, freeze, thaw, remove."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from orchestrator.model.spec import LocalProcess, LocalTargets
from orchestrator.targets.cgroups import Cgroup, detect
from orchestrator.targets.local import LocalFleet, SupervisedProcess

MiB = 1 << 20
HOLD = (
    "import mmap, time\nm = mmap.mmap(-1, {n})\nfor _ in range({n} >> 20):\n    m.write(b'x' * (1 << 20))\n"
    "print('held', flush=True)\ntime.sleep(60)"
)
SPIN = "import sys\nprint('spinning', flush=True)\nwhile True:\n    pass"


def _stat(pid: int) -> tuple[str, int]:
    """State letter and user CPU ticks (field 14) of a process."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[0], int(fields[11])


@pytest.fixture
def cgroup() -> Iterator[Cgroup]:
    group = Cgroup(f"drillctl-test-{uuid.uuid4().hex[:12]}", 64 * MiB)
    yield group
    asyncio.run(group.remove())


def _start(group: Cgroup, script: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, preexec_fn=group.join_in_child()
    )
    assert proc.stdout is not None
    proc.stdout.readline()
    return proc


def test_detects_the_memory_hierarchy_of_this_process() -> None:
    layout = detect()
    own = Path("/proc/self/cgroup").read_text()
    print(f"cgroup v{layout.version}: memory {layout.memory}, freezer {layout.freezer}")
    assert (layout.memory / "cgroup.procs").is_file()
    if layout.version == 1:
        memory_line = next(line for line in own.splitlines() if ":memory:" in line)
        assert str(layout.memory).endswith(memory_line.split(":", 2)[2].rstrip("/"))
        assert (layout.memory / "memory.limit_in_bytes").is_file()
    else:
        assert "memory" in (layout.memory / "cgroup.controllers").read_text().split()


def test_create_join_read_and_the_limit_holds(cgroup: Cgroup) -> None:
    cgroup.create()
    cgroup.create()
    limit_file = "memory.max" if cgroup.layout.version == 2 else "memory.limit_in_bytes"
    assert int((cgroup.memory_dir / limit_file).read_text()) == 64 * MiB
    assert cgroup.memory_dir.parent == cgroup.layout.memory, "created under drillctl's own cgroup"
    before = cgroup.memory_current()
    holder = _start(cgroup, HOLD.format(n=32 * MiB))
    try:
        assert cgroup.pids() == [holder.pid]
        assert cgroup.name in Path(f"/proc/{holder.pid}/cgroup").read_text()
        used = cgroup.memory_current() - before
        print(f"32MiB held: memory charged {used / MiB:.1f}MiB")
        assert 30 * MiB <= used <= 48 * MiB
    finally:
        holder.kill()
        holder.wait()
    over = _start(cgroup, HOLD.format(n=128 * MiB))
    assert over.wait(timeout=30) == -9, "128MiB in a 64MiB cgroup: killed by the cgroup's OOM killer"


def test_freeze_stops_progress_and_thaw_resumes_it(cgroup: Cgroup) -> None:
    cgroup.create()
    spinner = _start(cgroup, SPIN)

    async def scenario() -> None:
        await asyncio.sleep(0.3)
        await cgroup.freeze()
        await cgroup.freeze()
        assert cgroup.frozen()
        state, ticks = _stat(spinner.pid)
        await asyncio.sleep(0.5)
        later_state, later_ticks = _stat(spinner.pid)
        print(f"frozen: state {state}/{later_state}, user ticks {ticks} -> {later_ticks}")
        assert state != "R" and later_state != "R"
        assert later_ticks == ticks, "no CPU time while frozen"
        await cgroup.thaw()
        await cgroup.thaw()
        assert not cgroup.frozen()
        await asyncio.sleep(0.5)
        thawed_state, thawed_ticks = _stat(spinner.pid)
        print(f"thawed: state {thawed_state}, user ticks {later_ticks} -> {thawed_ticks}")
        assert thawed_ticks > later_ticks

    try:
        asyncio.run(scenario())
    finally:
        spinner.kill()
        spinner.wait()


def test_remove_kills_stragglers_even_when_frozen_and_is_idempotent(cgroup: Cgroup) -> None:
    cgroup.create()
    spinner = _start(cgroup, SPIN)

    async def scenario() -> None:
        await cgroup.freeze()
        await cgroup.remove()
        await cgroup.remove()

    asyncio.run(scenario())
    assert spinner.wait(timeout=10) == -9
    assert not any(d.exists() for d in cgroup.dirs())


def test_supervised_process_runs_in_its_cgroup_until_stopped_for_good(tmp_path: Path) -> None:
    run_dir = tmp_path / f"run-{uuid.uuid4().hex[:8]}"
    spec = LocalProcess.model_validate(
        {"name": "svc", "argv": [sys.executable, "-c", "import time; time.sleep(60)"], "memory_limit": "128MiB"}
    )

    async def scenario() -> None:
        proc = SupervisedProcess(spec, tmp_path, run_dir)
        assert proc.cgroup is not None and proc.cgroup.name == f"drillctl-{run_dir.name}-svc"
        await proc.start()
        assert proc.pid is not None and proc.cgroup.pids() == [proc.pid]
        await proc.stop(hold=True)
        assert proc.cgroup.memory_dir.is_dir(), "a held process keeps its cgroup"
        await proc.start()
        assert proc.pid is not None and proc.cgroup.pids() == [proc.pid]
        await proc.stop()
        assert not proc.cgroup.memory_dir.exists()

    asyncio.run(scenario())


def test_a_memory_limit_must_be_a_size_not_a_share(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="memory_limit"):
        LocalTargets.model_validate({"processes": [{"name": "svc", "argv": ["true"], "memory_limit": "50%"}]})
    targets = LocalTargets.model_validate({"processes": [{"name": "svc", "argv": ["true"], "memory_limit": "64MiB"}]})
    LocalFleet(targets, tmp_path, tmp_path).preflight(tmp_path)
