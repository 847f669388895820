"""`drillctl recover --cluster`: leftovers of dead runs found by their marks in the real cluster
(kube-apiserver, controller-manager, KWOK): nodes, tombstones, skewed workloads, helper pods, marked pods.

Run ids are unique per test, and only those of a test's own dead run (a journal under its tmp runs
folder) are restored, so objects of tests running alongside are left alone."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kubernetes import client

from orchestrator.faults.kube_clock import KubeClockSkewDriver
from orchestrator.faults.kube_node import KubeNodeLossDriver
from orchestrator.faults.kube_pod_faults import KubeGcPauseDriver
from orchestrator.kube.access import KubeAccess, connect
from orchestrator.kube.leftovers import Leftover, recover_cluster
from orchestrator.kube.marks import MANAGED_BY, TAINT_KEY, Mark
from orchestrator.model.spec import ClockSkewFault, GcPauseFault, KubernetesTargets, NodeLossFault
from orchestrator.model.undo import Undo
from tests.fixtures.kube import KubeCluster
from tests.kube.support import (
    Pool,
    deployment,
    drillctl_marks,
    inject,
    kube_api,
    namespace,
    pool,
    raw,
    running_pod,
)
from tests.support import run

__all__ = ["kube_api", "namespace", "pool"]


def crash(pool: Pool, node: str, run_id: str, mode: str = "crash") -> Undo:
    spec = NodeLossFault.model_validate(
        {"type": "node.loss", "name": "lose", "duration": "5s", "nodes": {"names": [node]}, "mode": mode}
    )
    return inject(KubeNodeLossDriver(pool.access(), seed=1), spec, f"{run_id}/lose")


def journal(runs_dir: Path, run_id: str) -> Path:
    path = runs_dir / run_id / "journal.jsonl"
    path.parent.mkdir(parents=True)
    path.touch()
    return path


def ours(found: list[Leftover], pool: Pool) -> dict[str, Leftover]:
    return {f.name.rsplit("/", 1)[-1]: f for f in found if pool.tag in f.name}


def is_restored(pool: Pool, name: str) -> bool:
    node = pool.node(name)
    marked = any(k.startswith("drillctl.io/") for k in node["metadata"].get("annotations") or {})
    tainted = any(t["key"] == TAINT_KEY for t in node["spec"].get("taints") or [])
    return not (marked or tainted or node["spec"].get("unschedulable"))


def test_dead_runs_are_restored_live_and_unknown_ones_left_until_they_expire(pool: Pool, tmp_path: Path) -> None:
    dead, live, elsewhere = pool.add_node(), pool.add_node(), pool.add_node()
    journal(tmp_path, "dead-run")
    held = journal(tmp_path, "live-run")
    crash(pool, dead, "dead-run")
    crash(pool, live, "live-run")
    crash(pool, elsewhere, "other-host-run")
    conn = connect(pool.access())
    fd = os.open(held, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # what a running drillctl holds
        found = ours(asyncio.run(recover_cluster(conn, tmp_path, datetime.now(UTC))), pool)
        assert found[dead].verdict == "run dead-run is dead (its journal is not held)"
        assert found[dead].action.startswith(f"node {dead} restored: uncordoned")
        assert found[live].verdict == "run live-run is still live" and found[live].action == "left alone"
        assert found[elsewhere].action == "left alone" and "is not under" in found[elsewhere].verdict
        assert is_restored(pool, dead) and not is_restored(pool, live) and not is_restored(pool, elsewhere)

        later = datetime.now(UTC) + timedelta(hours=1)
        found = ours(asyncio.run(recover_cluster(conn, tmp_path, later)), pool)
        assert dead not in found, "idempotent: a restored node carries no mark"
        assert found[live].verdict.startswith("expired at") and found[elsewhere].verdict.startswith("expired at")
        assert is_restored(pool, live) and is_restored(pool, elsewhere)
    finally:
        os.close(fd)


def test_a_deleted_node_is_recreated_from_its_tombstone_by_the_cli(pool: Pool, tmp_path: Path) -> None:
    node = pool.add_node({"ka-role": "gone"})
    journal(tmp_path, "dead-run")
    crash(pool, node, "dead-run", mode="delete")
    assert not pool.node_ready(node)

    result = run(
        "recover", "--cluster", "--runs-dir", str(tmp_path), "--kubeconfig", str(pool.kubeconfig), "-o", "json"
    )
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    mine = [c for c in document["cluster"] if pool.namespace in c["name"]]
    assert len(mine) == 1 and mine[0]["kind"] == "ConfigMap (deleted node)", document
    assert mine[0]["action"] == f"node {node} recreated from its recorded manifest"
    assert pool.node(node)["metadata"]["labels"]["ka-role"] == "gone"
    assert not pool.core.list_namespaced_config_map(pool.namespace, label_selector="drillctl.io/leftover").items


# --- objects of the other Kubernetes drivers ---------------------------------------------------------


def skew(kind: str, name: str) -> ClockSkewFault:
    return ClockSkewFault.model_validate(
        {"type": "clock.skew", "name": "skew", "duration": "30s", "scope": "workload", "offset": "+90s",
         "workload": {"kind": kind, "name": name}}
    )  # fmt: skip


def test_a_skewed_workload_of_a_dead_run_gets_its_env_back_by_the_cli(
    kube_cluster: KubeCluster, kube_api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    apps = client.AppsV1Api(kube_api)
    apps.create_namespaced_deployment(namespace, deployment("web", 1))
    apps.create_namespaced_deployment(namespace, deployment("old", 1))
    before = raw(apps.read_namespaced_deployment, "web", namespace)
    run_id = f"dead-{uuid.uuid4().hex[:8]}"
    journal(tmp_path, run_id)
    access = KubeAccess(kubeconfig=str(kube_cluster.kubeconfig), namespace=namespace)
    inject(KubeClockSkewDriver(access, seed=1), skew("Deployment", "web"), f"{run_id}/skew")
    skewed = raw(apps.read_namespaced_deployment, "web", namespace)
    assert skewed["spec"]["template"] != before["spec"]["template"] and drillctl_marks(skewed)
    # A mark that does not record what drillctl set (an older drillctl's): nothing to restore it from.
    legacy = Mark(run_id, "skew", datetime.now(UTC) + timedelta(hours=1), {"env": {"app": None}})
    apps.patch_namespaced_deployment("old", namespace, {"metadata": {"annotations": legacy.annotations()}})

    result = run(
        "recover", "--cluster", "--runs-dir", str(tmp_path), "--kubeconfig", str(kube_cluster.kubeconfig), "-o", "json"
    )
    assert result.returncode == 0, result.stderr
    mine = {c["name"]: c for c in json.loads(result.stdout)["cluster"] if c["run_id"] == run_id}
    web, old = mine[f"{namespace}/web"], mine[f"{namespace}/old"]
    assert web["kind"] == "Deployment" and web["failed"] is False, web
    assert web["verdict"] == f"run {run_id} is dead (its journal is not held)"
    assert web["action"] == f"Deployment {namespace}/web restored: pod template env and marks"
    after = raw(apps.read_namespaced_deployment, "web", namespace)
    assert after["spec"]["template"] == before["spec"]["template"] and not drillctl_marks(after)
    assert "does not record the env drillctl changed: left alone" in old["action"]

    again = asyncio.run(recover_cluster(connect(access), tmp_path, datetime.now(UTC)))
    assert f"{namespace}/web" not in {f.name for f in again if f.run_id == run_id}, "restored: no mark left"


def test_a_statefulset_skewed_meanwhile_by_someone_else_keeps_their_value(
    kube_cluster: KubeCluster, kube_api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    apps = client.AppsV1Api(kube_api)
    body = deployment("db", 1)
    apps.create_namespaced_stateful_set(
        namespace,
        client.V1StatefulSet(
            metadata=client.V1ObjectMeta(name="db"),
            spec=client.V1StatefulSetSpec(
                replicas=1, service_name="db", selector=body.spec.selector, template=body.spec.template
            ),
        ),
    )
    run_id = f"dead-{uuid.uuid4().hex[:8]}"
    journal(tmp_path, run_id)
    access = KubeAccess(kubeconfig=str(kube_cluster.kubeconfig), namespace=namespace)
    inject(KubeClockSkewDriver(access, seed=1), skew("StatefulSet", "db"), f"{run_id}/skew")
    skewed = raw(apps.read_namespaced_stateful_set, "db", namespace)
    env = [
        ({**e, "value": "+1h"} if e["name"] == "FAKETIME" else e)
        for e in skewed["spec"]["template"]["spec"]["containers"][0]["env"]
    ]
    apps.patch_namespaced_stateful_set(
        "db",
        namespace,
        [{"op": "replace", "path": "/spec/template/spec/containers/0/env", "value": env}],
        _content_type="application/json-patch+json",
    )

    found = asyncio.run(recover_cluster(connect(access), tmp_path, datetime.now(UTC)))
    [db] = [f for f in found if f.name == f"{namespace}/db"]
    assert db.kind == "StatefulSet" and not db.failed
    assert "FAKETIME was changed meanwhile" in db.action, db.action
    after = raw(apps.read_namespaced_stateful_set, "db", namespace)
    assert after["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "FAKETIME", "value": "+1h"}]
    assert not drillctl_marks(after)


def test_a_clock_helper_pod_of_a_dead_run_is_deleted(
    kube_cluster: KubeCluster, kube_api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    core = client.CoreV1Api(kube_api)
    run_id = f"dead-{uuid.uuid4().hex[:8]}"
    journal(tmp_path, run_id)
    access = KubeAccess(
        kubeconfig=str(kube_cluster.kubeconfig),
        namespace=namespace,
        limits=KubernetesTargets(allow_node_clock_change=True, helper_image="registry.invalid/helper:1"),
    )
    spec = ClockSkewFault.model_validate(
        {"type": "clock.skew", "name": "skew", "duration": "60s", "scope": "node", "offset": "+90s",
         "nodes": {"names": ["kwok-node-0"]}}
    )  # fmt: skip
    undo = inject(KubeClockSkewDriver(access, seed=1), spec, f"{run_id}/skew")
    helper = undo.state["helpers"][0]["pod"]
    assert core.read_namespaced_pod(helper, namespace).metadata.labels[MANAGED_BY] == "drillctl"

    found = asyncio.run(recover_cluster(connect(access), tmp_path, datetime.now(UTC)))
    [pod] = [f for f in found if f.run_id == run_id]
    assert pod.kind == "Pod (drillctl helper)" and pod.name == f"{namespace}/{helper}"
    assert pod.action == f"helper pod {namespace}/{helper} deleted and gone" and not pod.failed
    assert not core.list_namespaced_pod(namespace, field_selector=f"metadata.name={helper}").items


def test_a_pod_with_a_pause_loop_of_a_dead_run_is_unmarked_and_its_loop_ended(
    kube_cluster: KubeCluster, kube_api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    core = client.CoreV1Api(kube_api)
    running_pod(core, namespace, "svc-0")
    run_id = f"dead-{uuid.uuid4().hex[:8]}"
    journal(tmp_path, run_id)
    access = KubeAccess(
        kubeconfig=str(kube_cluster.kubeconfig),
        namespace=namespace,
        limits=KubernetesTargets(helper_image="registry.invalid/helper:1"),
    )
    spec = GcPauseFault.model_validate(
        {"type": "gc.pause", "name": "stw", "pods": {"names": ["svc-0"]}, "pause": "300ms", "every": "2s",
         "duration": "60s"}
    )  # fmt: skip
    undo = inject(KubeGcPauseDriver(access, seed=1), spec, f"{run_id}/stw")
    loop = undo.state["pods"][0]["ephemeral"]
    assert drillctl_marks(raw(core.read_namespaced_pod, "svc-0", namespace))

    found = asyncio.run(recover_cluster(connect(access), tmp_path, datetime.now(UTC)))
    [pod] = [f for f in found if f.run_id == run_id]
    assert pod.kind == "Pod" and pod.name == f"{namespace}/svc-0" and not pod.failed
    # KWOK answers exec without running anything: the loop cannot be confirmed stopped, and says when it ends.
    assert pod.action.startswith(f"pod {namespace}/svc-0: loop {loop}: not stopped: exec did not confirm"), pod.action
    assert "it ends by itself by" in pod.action and pod.action.endswith("marks removed")
    assert not drillctl_marks(raw(core.read_namespaced_pod, "svc-0", namespace))
