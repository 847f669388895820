"""gc.full on a real JVM (demo/jvm/GcTarget.java): full collections show in its GC log at the cadence asked."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import statistics
import subprocess
import time
from pathlib import Path

from pydantic import TypeAdapter

from orchestrator.faults.base import touched
from orchestrator.faults.jvm import GcFullDriver, jvm_pid
from orchestrator.faults.registry import build_registry
from orchestrator.faults.resolving import ResolvingDriver
from orchestrator.model.spec import FaultSpec, LocalTargets
from orchestrator.model.undo import Undo
from orchestrator.runner import UNUSED_TOXIPROXY
from orchestrator.targets.local import LocalFleet
from orchestrator.toxiproxy_client import ToxiproxyClient
from tests.support import ROOT

FAULT = TypeAdapter(FaultSpec)
FULL_GC = re.compile(r"^\[(\d+\.\d+)s\].*Pause Full \(Diagnostic Command\)", re.MULTILINE)


def _full_gcs(log: Path) -> list[float]:
    """JVM uptimes (s) of the full collections jcmd asked for."""
    return [float(t) for t in FULL_GC.findall(log.read_text())] if log.exists() else []


def _jvm_fleet(tmp_path: Path, gc_log: Path) -> LocalFleet:
    classes = tmp_path / "classes"
    subprocess.run(["javac", "-d", str(classes), str(ROOT / "demo" / "jvm" / "GcTarget.java")], check=True, timeout=120)
    java = f"java -Xmx128m -Xlog:gc:file={gc_log} -cp {classes} GcTarget"
    # Behind a shell that stays its parent, so the driver has to find the JVM in the process group.
    process = {"name": "jvm", "argv": ["sh", "-c", f"{java}; echo exited"]}
    return LocalFleet(LocalTargets.model_validate({"processes": [process]}), tmp_path, tmp_path / "run")


def test_full_gc_at_its_cadence_and_none_after_revert(tmp_path: Path) -> None:
    gc_log = tmp_path / "gc.log"
    fleet = _jvm_fleet(tmp_path, gc_log)
    driver = GcFullDriver(fleet)
    spec = FAULT.validate_python({"name": "gc", "type": "gc.full", "target": "jvm", "every": "500ms", "duration": "3s"})

    async def scenario() -> tuple[list[float], list[float]]:
        target = fleet.processes["jvm"]
        await target.start()
        try:
            deadline = time.monotonic() + 30
            while jvm_pid(target) is None or "ready" not in target.log_path.read_text():
                assert time.monotonic() < deadline, "the JVM did not start"
                await asyncio.sleep(0.1)
            await driver.preflight(spec)
            undo = await driver.prepare(spec, "run/gc")
            assert undo.state["jvms"][0]["pid"] != target.pid, "the JVM, not the shell in front of it"
            await driver.inject(spec, undo)
            await asyncio.sleep(3.0)
            await driver.revert(undo)
            await driver.revert(undo)
            await GcFullDriver(fleet).revert(Undo.from_json(json.loads(json.dumps(undo.to_json()))))
            during = _full_gcs(gc_log)
            await asyncio.sleep(1.5)
            return during, _full_gcs(gc_log)
        finally:
            await target.stop()

    during, later = asyncio.run(scenario())
    gaps = [b - a for a, b in itertools.pairwise(during)]
    print(f"{len(during)} full GCs at JVM uptimes {during}; gaps {[round(g, 3) for g in gaps]}")
    assert 3 <= len(during) <= 8
    assert 0.35 <= statistics.median(gaps) <= 1.2
    assert later == during, "no full collection after revert"


def test_a_command_resolver_naming_a_node_collects_the_adopted_jvm_in_it(tmp_path: Path) -> None:
    """A JVM drillctl did not start, adopted by its command line in node `app`, which a command names at injection."""
    gc_log = tmp_path / "gc.log"
    classes = tmp_path / "classes"
    subprocess.run(["javac", "-d", str(classes), str(ROOT / "demo" / "jvm" / "GcTarget.java")], check=True, timeout=120)
    marker = f"-Ddrillctl.test={tmp_path.name}"
    java = ["java", marker, "-Xmx128m", f"-Xlog:gc:file={gc_log}", "-cp", str(classes), "GcTarget"]
    targets = LocalTargets.model_validate(
        {
            "adopted": [{"name": "jvm", "cmdline": re.escape(marker), "restore": False}],
            "nodes": [{"name": "app", "processes": ["jvm"]}],
        }
    )
    fleet = LocalFleet(targets, tmp_path, tmp_path / "run")
    (tmp_path / "leader").write_text("app\n")
    spec = FAULT.validate_python(
        {"name": "gc", "type": "gc.full", "target": {"command": ["cat", "leader"]}, "every": "500ms", "duration": "3s"}
    )
    driver = build_registry(ToxiproxyClient(UNUSED_TOXIPROXY), fleet).for_fault(spec)
    assert isinstance(driver, ResolvingDriver)

    async def scenario(pid: int) -> tuple[list[float], list[float]]:
        await driver.check_targets(spec)
        undo = await driver.prepare(spec, "run/gc")
        assert undo.state["resolved"]["target"] == "app"
        assert [(j["process"], j["pid"]) for j in undo.state["jvms"]] == [("jvm", pid)]
        assert touched(driver, undo).targets[1:] == (f"process/jvm (JVM pid {pid})",)
        await driver.inject(spec, undo)
        await asyncio.sleep(3.0)
        await driver.revert(undo)
        await driver.revert(undo)
        during = _full_gcs(gc_log)
        await asyncio.sleep(1.5)
        return during, _full_gcs(gc_log)

    with subprocess.Popen(java, stdout=subprocess.PIPE, text=True, start_new_session=True) as jvm:
        try:
            assert jvm.stdout is not None and jvm.stdout.readline().strip() == "ready"
            during, later = asyncio.run(scenario(jvm.pid))
        finally:
            jvm.kill()
    print(f"{len(during)} full GCs of the adopted JVM at uptimes {during}")
    assert 3 <= len(during) <= 8
    assert later == during, "no full collection after revert"
