"""gc.pause@kubernetes and memory.pressure@kubernetes on real containers (the real node: kubelet, containerd, runc).

The API-level tests (tests/faults/test_kube_pod_faults.py, on KWOK) check what drillctl asks of the API
server; these check what the kernel then does: the target's heartbeat stops for the pause length at each
cycle while nothing else stops, and the pod's memory cgroup holds the ballast, then lets it go, or the
kernel OOM-kills the ballast at the pod's limit. Revert ends the loops by exec, which a real kubelet serves.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

import structlog
from kubernetes import client

from orchestrator.faults.kube_pod_faults import KubeGcPauseDriver, KubeMemoryPressureDriver
from orchestrator.kube.access import KubeAccess
from orchestrator.model.spec import GcPauseFault, KubernetesTargets, MemoryPressureFault
from orchestrator.model.undo import Undo
from tests.fixtures.kube import KubeCluster, RealNode
from tests.fixtures.toxiproxy import free_port
from tests.kube.support import from_record, inject, kube_api, namespace, wait_for
from tests.node.support import BEAT, answer, gaps, serving, start_pods, target_pod

__all__ = ["kube_api", "namespace"]

RUN = "node-pods-20260101T000000Z"
MiB = 2**20


def access(kube_cluster: KubeCluster, real_node: RealNode, namespace: str) -> KubeAccess:
    limits = KubernetesTargets(helper_image=real_node.images["helper"])
    return KubeAccess(kubeconfig=str(kube_cluster.kubeconfig), namespace=namespace, limits=limits)


def revert_outcome(driver: Any, undo: Undo) -> str:
    with structlog.testing.capture_logs() as logs:
        asyncio.run(driver.revert(from_record(undo)))
    [outcome] = [e["outcome"] for e in logs if e["event"] == "ephemeral_loop_revert"]
    return str(outcome)


def process_state(pid: int) -> str:
    """The state letter of /proc/PID/stat (T: stopped)."""
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]


def loop_log(core: client.CoreV1Api, namespace: str, pod: str, container: str) -> str:
    try:
        return str(core.read_namespaced_pod_log(pod, namespace, container=container))
    except client.ApiException:
        return ""  # not started yet


def loop_running(core: client.CoreV1Api, namespace: str, pod: str, container: str) -> bool:
    statuses = core.read_namespaced_pod(pod, namespace).status.ephemeral_container_statuses or []
    return any(s.name == container and s.state.running is not None for s in statuses)


def test_gc_pause_stops_the_target_container_for_the_pause_at_each_cycle_and_nothing_else(
    kube_cluster: KubeCluster, real_node: RealNode, kube_api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    target, side, neighbour = free_port(), free_port(), free_port()
    start_pods(
        core,
        namespace,
        {
            target: target_pod(real_node, "svc", target, sidecar=side),
            neighbour: target_pod(real_node, "nbr", neighbour),
        },
    )
    wait_for("the sidecar to serve", lambda: serving(side))
    pause, every = 1.0, 3.0
    spec = GcPauseFault.model_validate(
        {"type": "gc.pause", "name": "stw", "pods": {"names": ["svc"]}, "pause": "1s", "every": "3s", "duration": "60s"}
    )
    driver = KubeGcPauseDriver(access(kube_cluster, real_node, namespace), seed=5)
    asyncio.run(driver.preflight(spec))
    undo = inject(driver, spec, f"{RUN}/stw")
    loop = undo.state["pods"][0]["ephemeral"]
    wait_for("the pause loop to start", lambda: loop_running(core, namespace, "svc", loop))

    # Three cycles, watching the node's own daemons meanwhile: the loop only sees the target's PID namespace.
    daemons = {
        name: int((kube_cluster.state_dir / "pids" / f"{name}.pid").read_text()) for name in ("kubelet", "containerd")
    }
    started = time.monotonic()
    seen_stopped: set[str] = set()
    while time.monotonic() - started < 3 * every:
        seen_stopped |= {name for name, pid in daemons.items() if process_state(pid) == "T"}
        time.sleep(0.05)
    assert revert_outcome(driver, undo) == "stopped by exec"
    reverted = time.monotonic()
    time.sleep(2.0)

    target_beats = answer(target, "/beats")["beats"]
    paused = gaps(target_beats, started - every, longer_than=pause / 2)
    print(
        f"\ntarget gaps (s after the watch began, length): {[(round(a - started, 2), round(n, 3)) for a, n in paused]}"
    )
    during = [(a, n) for a, n in paused if a < reverted]
    assert len(during) >= 3, paused
    for _, length in during:
        assert pause - 2 * BEAT <= length <= pause + 0.6, during
    starts = [a for a, _ in during]
    assert all(every - 0.6 <= b - a <= every + 0.6 for a, b in itertools.pairwise(starts)), starts
    assert not [g for g in paused if g[0] >= reverted], "revert resumed the target for good"
    for port, who in ((side, "the target's sidecar (same pod, same PID namespace)"), (neighbour, "the neighbour pod")):
        assert gaps(answer(port, "/beats")["beats"], started - every, longer_than=pause / 2) == [], (
            f"{who} kept beating"
        )
    assert seen_stopped == set(), f"stopped: {seen_stopped}"
    assert "pause loop ended (stopped)" in loop_log(core, namespace, "svc", loop)


def pod_memory(real_node: RealNode, uid: str) -> int:
    return int((real_node.pod_cgroup(uid) / "memory.usage_in_bytes").read_text())


def test_memory_pressure_charges_the_ballast_to_the_pod_and_at_the_limit_the_kernel_kills_the_ballast(
    kube_cluster: KubeCluster, real_node: RealNode, kube_api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    port = free_port()
    start_pods(core, namespace, {port: target_pod(real_node, "svc", port, memory_limit="256Mi")})
    uid = core.read_namespaced_pod("svc", namespace).metadata.uid
    limit = int((real_node.pod_cgroup(uid) / "memory.limit_in_bytes").read_text())
    assert limit == 256 * MiB, "the pod's cgroup has its container's limit"
    before = pod_memory(real_node, uid)
    driver = KubeMemoryPressureDriver(access(kube_cluster, real_node, namespace), seed=5)

    size = 96 * MiB
    squeeze = MemoryPressureFault.model_validate(
        {"type": "memory.pressure", "name": "squeeze", "pods": {"names": ["svc"]}, "size": "96MiB", "duration": "60s"}
    )
    asyncio.run(driver.preflight(squeeze))
    undo = inject(driver, squeeze, f"{RUN}/squeeze")
    loop = undo.state["pods"][0]["ephemeral"]
    wait_for("the ballast to hold its size", lambda: "holding" in loop_log(core, namespace, "svc", loop))
    held = pod_memory(real_node, uid)
    target_rss = answer(port, "/memory")
    print(f"\npod memory {before / MiB:.1f} MiB before, {held / MiB:.1f} MiB holding {size / MiB:.0f} MiB (limit 256)")
    assert size * 0.97 <= held - before <= size * 1.25, (before, held)
    assert held < limit
    assert target_rss["cgroup"] < 64 * MiB, "charged beside the target container, not to it"
    assert revert_outcome(driver, undo) == "stopped by exec"
    wait_for("the ballast's memory to be released", lambda: pod_memory(real_node, uid) - before < 16 * MiB, timeout=30)

    # Over the pod's limit (force): the cgroup's OOM killer picks the largest process, the ballast.
    over = MemoryPressureFault.model_validate(
        {"type": "memory.pressure", "name": "over", "pods": {"names": ["svc"]}, "size": "320MiB", "force": True,
         "ramp": "2s", "duration": "60s"}
    )  # fmt: skip
    undo = inject(driver, over, f"{RUN}/over")
    loop = undo.state["pods"][0]["ephemeral"]

    def ballast_ended() -> Any:
        statuses = core.read_namespaced_pod("svc", namespace).status.ephemeral_container_statuses or []
        return next((s.state.terminated for s in statuses if s.name == loop and s.state.terminated), None)

    ended = wait_for("the kernel to kill the ballast", ballast_ended, timeout=60)
    print(f"ballast over the limit: exit code {ended.exit_code}, reason {ended.reason}")
    assert ended.exit_code == 137 and ended.reason == "OOMKilled", ended
    pod = core.read_namespaced_pod("svc", namespace)
    [app] = pod.status.container_statuses
    assert app.restart_count == 0 and app.state.running is not None, "the target container lives on"
    assert answer(port, "/healthz") == "ok"
    assert revert_outcome(driver, undo) == "already ended"
