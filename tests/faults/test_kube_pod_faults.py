"""gc.pause@kubernetes and memory.pressure@kubernetes against the real control plane (kube-apiserver, KWOK).

KWOK runs no containers, so the API tests check the ephemeral container drillctl adds (target
container, image, command, parameters, the deadline it ends by) and what revert reports: KWOK
answers exec without running anything, so the stop cannot be confirmed and the loop is left to
its own deadline, which the record says. The ballast script runs for real under /bin/sh and is
measured by its resident memory. The pause script is not run here: outside a container it would stop
every process outside its own cgroup, which on a test machine would be everyone's; both loops run in
real pods in tests/node/test_pod_faults.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
import structlog
from kubernetes import client

from orchestrator.errors import PreflightError
from orchestrator.faults.kube_pod_faults import (
    BALLAST_SCRIPT,
    PAUSE_SCRIPT,
    KubeGcPauseDriver,
    KubeMemoryPressureDriver,
)
from orchestrator.kube.access import KubeAccess
from orchestrator.kube.ephemeral import PID_FILE
from orchestrator.kube.marks import RUN_ID
from orchestrator.kube.objects import shell_command
from orchestrator.model.spec import GcPauseFault, KubernetesTargets, MemoryPressureFault
from orchestrator.model.undo import Undo
from tests.fixtures.kube import KubeCluster
from tests.kube.support import from_record, kube_api, namespace, raw, running_pod, wait_for

__all__ = ["kube_api", "namespace"]

RUN = "kc-pods-20260101T000000Z"
HELPER = "registry.invalid/drillctl/helper:1"


def access(kube_cluster: KubeCluster, namespace: str, **limits: Any) -> KubeAccess:
    return KubeAccess(
        kubeconfig=str(kube_cluster.kubeconfig),
        namespace=namespace,
        limits=KubernetesTargets(helper_image=HELPER, **limits),
    )


def raw_pod(core: client.CoreV1Api, namespace: str, name: str) -> dict[str, Any]:
    return raw(core.read_namespaced_pod, name, namespace)


def test_gc_pause_adds_an_ephemeral_loop_on_the_target_container_and_reports_how_revert_ended_it(
    kube_cluster: KubeCluster, kube_api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    running_pod(core, namespace, "svc-0")
    driver = KubeGcPauseDriver(access(kube_cluster, namespace), seed=5)
    spec = GcPauseFault.model_validate(
        {
            "type": "gc.pause",
            "name": "stw",
            "pods": {"label_selector": "app=svc", "container": "proxy"},
            "pause": "300ms",
            "every": "2s",
            "jitter": "100ms",
            "duration": "40s",
        }
    )
    plan = asyncio.run(driver.plan(spec))
    assert plan.refusals == () and "svc-0" in plan.touches[0], plan

    async def inject() -> Undo:
        await driver.preflight(spec)
        undo = await driver.prepare(spec, f"{RUN}/stw")
        await driver.inject(spec, undo)
        return undo

    undo = asyncio.run(inject())
    pod = raw_pod(core, namespace, "svc-0")
    [ephemeral] = pod["spec"]["ephemeralContainers"]
    assert ephemeral["name"] == undo.state["pods"][0]["ephemeral"]
    assert ephemeral["targetContainerName"] == "proxy"
    assert ephemeral["image"] == HELPER
    assert ephemeral["command"] == shell_command(PAUSE_SCRIPT)
    env = {e["name"]: e["value"] for e in ephemeral["env"]}
    assert env["PAUSE_CS"] == "30" and env["EVERY_CS"] == "200" and env["JITTER_CS"] == "10"
    proxy_id = next(c["containerID"] for c in pod["status"]["containerStatuses"] if c["name"] == "proxy")
    assert env["TARGET_ID"] == proxy_id.removeprefix("kwok://"), "the loop pauses the target container's processes"
    assert env["DURATION_CS"] == "4000", "the loop's own deadline: the fault's duration"
    assert pod["metadata"]["annotations"][RUN_ID] == RUN

    with structlog.testing.capture_logs() as logs:
        asyncio.run(driver.revert(from_record(undo)))
    [outcome] = [e["outcome"] for e in logs if e["event"] == "ephemeral_loop_revert"]
    assert outcome.startswith("not stopped: exec did not confirm") and "ends by itself 40s after" in outcome
    after = raw_pod(core, namespace, "svc-0")
    assert RUN_ID not in (after["metadata"].get("annotations") or {})
    assert [c["name"] for c in after["spec"]["ephemeralContainers"]] == [ephemeral["name"]], "cannot be removed"

    core.delete_namespaced_pod("svc-0", namespace, grace_period_seconds=0)
    wait_for("the pod to be gone", lambda: not core.list_namespaced_pod(namespace).items)
    with structlog.testing.capture_logs() as logs:
        asyncio.run(driver.revert(from_record(undo)))
    assert any(e["event"] == "revert_pod_vanished" for e in logs)


def test_gc_pause_refuses_a_pod_whose_target_is_pid_1_of_its_own_pid_namespace_or_not_running_yet(
    kube_cluster: KubeCluster, kube_api: client.ApiClient, namespace: str
) -> None:
    running_pod(client.CoreV1Api(kube_api), namespace, "svc-0", share_pids=False)
    spec = GcPauseFault.model_validate(
        {"type": "gc.pause", "name": "stw", "pods": {"names": ["svc-0"]}, "pause": "300ms", "every": "2s",
         "duration": "10s"}
    )  # fmt: skip
    driver = KubeGcPauseDriver(access(kube_cluster, namespace), seed=5)
    with pytest.raises(PreflightError, match=r"does not set shareProcessNamespace: true.*PID 1 ignores SIGSTOP"):
        asyncio.run(driver.preflight(spec))

    # A pod whose containers have not started (KWOK holds it for an hour) has no container to pause yet.
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "svc-1", "annotations": {"pod-ready.stage.kwok.x-k8s.io/delay": "1h"}},
            "spec": {
                "nodeName": "kwok-node-1",
                "shareProcessNamespace": True,
                "containers": [{"name": "app", "image": "registry.invalid/drillctl/app:1"}],
            },
        },
    )
    starting = spec.model_copy(update={"pods": spec.pods.model_copy(update={"names": ["svc-1"]})})
    with pytest.raises(PreflightError, match="container app of pod svc-1 is not running"):
        asyncio.run(driver.preflight(starting))


def test_memory_pressure_sizes_from_the_container_limit_and_refuses_what_does_not_fit(
    kube_cluster: KubeCluster, kube_api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    running_pod(core, namespace, "svc-0", memory_limit="512Mi")
    driver = KubeMemoryPressureDriver(access(kube_cluster, namespace), seed=5)

    def spec(**fields: Any) -> MemoryPressureFault:
        return MemoryPressureFault.model_validate(
            {"type": "memory.pressure", "name": "squeeze", "pods": {"names": ["svc-0"]}, "duration": "30s", **fields}
        )

    squeeze = spec(size="50%", ramp="10s")

    async def inject() -> Undo:
        await driver.preflight(squeeze)
        undo = await driver.prepare(squeeze, f"{RUN}/squeeze")
        await driver.inject(squeeze, undo)
        return undo

    undo = asyncio.run(inject())
    [ephemeral] = raw_pod(core, namespace, "svc-0")["spec"]["ephemeralContainers"]
    assert ephemeral["targetContainerName"] == "app" and ephemeral["command"] == shell_command(BALLAST_SCRIPT)
    env = {e["name"]: e["value"] for e in ephemeral["env"]}
    assert int(env["SIZE"]) == 256 * 2**20
    assert env["STEPS"] == "10" and env["STEP_CS"] == "100" and env["HOLD_CS"] == "3000"
    assert undo.state["pods"][0]["lifetime"] == 40.0, "ramp + duration, then it exits by itself"
    with structlog.testing.capture_logs() as logs:
        asyncio.run(driver.revert(from_record(undo)))
    assert any(e["event"] == "ephemeral_loop_revert" for e in logs)

    with pytest.raises(PreflightError, match="above the memory limit"):
        asyncio.run(driver.preflight(spec(size="1GiB")))
    running_pod(core, namespace, "svc-1")
    no_limit = MemoryPressureFault.model_validate(
        {"type": "memory.pressure", "name": "share", "pods": {"names": ["svc-1"]}, "duration": "30s", "size": "50%"}
    )
    with pytest.raises(PreflightError, match="has none"):
        asyncio.run(driver.preflight(no_limit))
    too_many = MemoryPressureFault.model_validate(
        {"type": "memory.pressure", "name": "wide", "pods": {"percent": 100}, "duration": "30s", "size": "1MiB"}
    )
    with pytest.raises(PreflightError, match="max_pods"):
        asyncio.run(KubeMemoryPressureDriver(access(kube_cluster, namespace, max_pods=1), seed=5).preflight(too_many))


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def test_ballast_script_holds_the_memory_and_lets_go_on_sigterm(tmp_path: Path) -> None:
    size = 48 * 2**20
    env = {**os.environ, "CHUNK": str(size // 3), "STEPS": "3", "STEP_CS": "10", "HOLD_CS": "6000", "SIZE": str(size)}
    proc = subprocess.Popen(["sh", "-c", BALLAST_SCRIPT], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert "holding" in proc.stdout.readline()
        assert rss(proc.pid) >= size, "the shell holds the bytes resident"
        assert Path(PID_FILE).read_text().strip() == str(proc.pid)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0 and "released (stopped)" in out
    assert not Path(PID_FILE).exists()
