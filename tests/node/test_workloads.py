"""Workload faults on real containers (the real node): clock.skew under libfaketime, pod.kill and node.loss drain.

clock.skew (scope workload) patches the pod template, so the kubelet really restarts the target under
libfaketime: its wall clock moves by the offset, and back after revert. pod.kill and the drain stop real
containers, which the kubelet recreates; the recovery window a `kubernetes` probe measures (pods Ready, as
the kubelet reports them) and the one an HTTP probe of the service itself measures must agree.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from kubernetes import client

from orchestrator.faults.kube_clock import KubeClockSkewDriver
from orchestrator.kube.access import KubeAccess
from orchestrator.model.spec import ClockSkewFault, KubernetesTargets
from tests.fixtures.kube import KubeCluster, RealNode
from tests.fixtures.toxiproxy import free_port
from tests.kube.support import from_record, inject, kube_api, live_pods, namespace, wait_for
from tests.node.support import READINESS_PERIOD, START_S, answer, only_ours, serving, target_deployment
from tests.support import drill, report_of, run, write

__all__ = ["kube_api", "namespace"]

RUN = "node-workloads-20260101T000000Z"
OFFSET = 3600.0


def rolled_out(core: client.CoreV1Api, namespace: str, app: str, port: int, old: set[str]) -> str | None:
    """The uid of the one live pod of `app` once it is a new one (not in `old`), Ready and serving."""
    pods = live_pods(core, namespace, f"app={app}")
    if len(pods) != 1 or pods[0].metadata.uid in old:
        return None
    uid = str(pods[0].metadata.uid)
    ready = any(c.type == "Ready" and c.status == "True" for c in pods[0].status.conditions or [])
    return uid if ready and serving(port, uid) else None


def skew(port: int) -> float:
    """How far the target's wall clock is from ours (its clock read between two of ours)."""
    before = time.time()
    theirs = float(answer(port, "/clock")["wall"])
    return theirs - (before + time.time()) / 2


def test_workload_clock_skew_moves_the_targets_wall_clock_after_the_restart_and_back_after_revert(
    kube_cluster: KubeCluster, real_node: RealNode, kube_api: client.ApiClient, namespace: str
) -> None:
    core, apps = client.CoreV1Api(kube_api), client.AppsV1Api(kube_api)
    port = free_port()
    apps.create_namespaced_deployment(namespace, target_deployment(real_node, "clock", port))
    first = wait_for("the target to serve", lambda: rolled_out(core, namespace, "clock", port, set()), timeout=START_S)
    assert abs(skew(port)) < 1.0

    spec = ClockSkewFault.model_validate(
        {"type": "clock.skew", "name": "skew", "scope": "workload", "offset": "+1h", "duration": "5m",
         "workload": {"kind": "Deployment", "name": "clock"}}
    )  # fmt: skip
    access = KubeAccess(kubeconfig=str(kube_cluster.kubeconfig), namespace=namespace, limits=KubernetesTargets())
    driver = KubeClockSkewDriver(access, seed=5)
    asyncio.run(driver.preflight(spec))
    undo = inject(driver, spec, f"{RUN}/skew")
    skewed = wait_for("the restart under libfaketime", lambda: rolled_out(core, namespace, "clock", port, {first}))
    shifted = skew(port)
    clock = answer(port, "/clock")
    print(f"\ntarget clock after the restart: {shifted:+.3f}s from ours (FAKETIME={clock['faketime']!r})")
    assert clock["faketime"] == "+3600"
    assert abs(shifted - OFFSET) < 2.0, shifted
    assert abs(time.time() - time.clock_gettime(time.CLOCK_REALTIME)) < 1, "only the target's clock moved"

    asyncio.run(driver.revert(from_record(undo)))
    wait_for("the restart without it", lambda: rolled_out(core, namespace, "clock", port, {first, skewed}))
    back = skew(port)
    print(f"after revert: {back:+.3f}s")
    assert abs(back) < 1.0 and answer(port, "/clock")["faketime"] is None


def windows(report: dict[str, Any]) -> dict[str, float]:
    return {s["name"]: float(s["measured"]) for s in report["slas"]}


def window_sla(name: str, probe: str, fault: str, measured_from: str) -> dict[str, Any]:
    return {
        "name": name,
        "type": "recovery_window",
        "probes": [probe],
        "from": measured_from,
        "fault": fault,
        "max": "40s",
        "stable_for": "1s",
    }


def test_pod_kill_and_drain_recreate_real_containers_and_both_probes_see_the_same_recovery_window(
    kube_cluster: KubeCluster, real_node: RealNode, kube_api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    core, apps = client.CoreV1Api(kube_api), client.AppsV1Api(kube_api)
    port = free_port()
    apps.create_namespaced_deployment(namespace, target_deployment(real_node, "web", port))
    first = wait_for("the target to serve", lambda: rolled_out(core, namespace, "web", port, set()), timeout=START_S)
    interval = 0.2
    document = drill(
        "real-node-recovery",
        targets={"kubernetes": {"namespace": namespace, "max_nodes": 1, "max_pods": 1}},
        steady_state={
            "interval": f"{interval:g}s",
            "probes": [
                {
                    "type": "kubernetes",
                    "name": "web-ready",
                    "check": "ready_pods",
                    "label_selector": "app=web",
                    "min": 1,
                },
                {"type": "http", "name": "web-http", "url": f"http://127.0.0.1:{port}/healthz", "timeout": "500ms"},
            ],
        },
        phases={"baseline": "2s", "recovery": "40s"},
        faults=[
            {"name": "kill", "type": "pod.kill", "pods": {"label_selector": "app=web", "count": 1}},
            {
                "name": "drain",
                "type": "node.loss",
                "nodes": {"names": [real_node.name]},
                "mode": "drain",
                "start": "15s",
                "duration": "6s",
            },
        ],
        slas=[
            window_sla("kill-ready", "web-ready", "kill", "fault_start"),
            window_sla("kill-http", "web-http", "kill", "fault_start"),
            window_sla("drain-ready", "web-ready", "drain", "fault_start"),
            window_sla("drain-http", "web-http", "drain", "fault_start"),
        ],
    )
    wait_for("earlier tests' pods to leave the real node", lambda: only_ours(core, real_node, namespace))
    runs = tmp_path / "runs"
    result = run(
        "run", str(write(tmp_path, document)), "--kubeconfig", str(kube_cluster.kubeconfig), "--runs-dir", str(runs),
        "--quiet", timeout=240,
    )  # fmt: skip
    report = report_of(runs)
    assert result.returncode == 0, (result.stdout, result.stderr, report["run"])
    measured = windows(report)
    print(f"\nrecovery windows (s): {measured}")
    # A real container starts in about a second; the drain keeps the pod off the cordoned node until revert.
    assert measured["kill-http"] >= 0.3 and measured["drain-http"] >= 6.0
    # Ready follows serving: the kubelet's readiness probe (every 1s, its first one up to 1s late) and its
    # status report, on top of the samples' interval; never ahead of it by more than the sampling.
    late = 2 * READINESS_PERIOD + 1.0 + 2 * interval
    for fault in ("kill", "drain"):
        lag = measured[f"{fault}-ready"] - measured[f"{fault}-http"]
        assert -2 * interval <= lag <= late, (fault, measured)

    pods = live_pods(core, namespace, "app=web")
    assert len(pods) == 1 and pods[0].metadata.uid != first and pods[0].spec.node_name == real_node.name
    [status] = pods[0].status.container_statuses
    assert status.ready and status.restart_count == 0, "a new pod's new container, not a restart"
    assert not core.read_node(real_node.name).spec.unschedulable, "the drain's cordon is undone"
