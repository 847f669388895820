"""Pods of the tests on the real node: the target service (scripts/k8s/images/target/server.py) on host networking.

The target beats every 50 ms on the monotonic clock (the host's: containers have no time namespace) and
answers /clock, /beats and /memory on 127.0.0.1:<port>; a free loopback port per pod, since every pod
shares the host's network. Waits poll with deadlines generous enough for a loaded 2-core machine.
"""

from __future__ import annotations

import itertools
from typing import Any

import requests
from kubernetes import client

from tests.fixtures.kube import RealNode
from tests.kube.support import is_ready, wait_for

BEAT = 0.05
"""The target's beat interval (its default BEAT_INTERVAL)."""
START_S = 90.0
READINESS_PERIOD = 1.0
"""The kubelet probes /healthz this often (periodSeconds)."""


def target_container(node: RealNode, port: int, memory_limit: str | None = None) -> dict[str, Any]:
    """The target service on 127.0.0.1:`port`, Ready once it answers (a kubelet probe, host 127.0.0.1)."""
    resources: dict[str, Any] = {"requests": {"cpu": "10m", "memory": "32Mi"}}
    if memory_limit:
        resources["limits"] = {"memory": memory_limit}
    return {
        "name": "app",
        "image": node.images["target"],
        "imagePullPolicy": "Never",
        "env": [
            {"name": "PORT", "value": str(port)},
            {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
        ],
        "resources": resources,
        "readinessProbe": {
            "httpGet": {"host": "127.0.0.1", "port": port, "path": "/healthz"},
            "periodSeconds": round(READINESS_PERIOD),
            "timeoutSeconds": 1,
            "failureThreshold": 1,
        },
    }


def pod_spec(node: RealNode, port: int, memory_limit: str | None = None, share_pids: bool = True) -> dict[str, Any]:
    """On the real node only; `shareProcessNamespace` (which gc.pause needs) as `share_pids`."""
    return {
        "nodeSelector": node.node_selector,
        "tolerations": node.tolerations,
        "hostNetwork": True,
        "shareProcessNamespace": share_pids,
        "terminationGracePeriodSeconds": 2,
        "enableServiceLinks": False,
        "containers": [target_container(node, port, memory_limit)],
    }


def target_pod(
    node: RealNode, name: str, port: int, memory_limit: str | None = None, sidecar: int | None = None
) -> dict[str, Any]:
    """A pod of the target (container `app`) and, on port `sidecar`, a second one (container `side`)."""
    spec = pod_spec(node, port, memory_limit)
    if sidecar is not None:
        spec["containers"].append({**target_container(node, sidecar), "name": "side"})
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}}, "spec": spec}


def target_deployment(node: RealNode, name: str, port: int) -> dict[str, Any]:
    """One replica; a rollout stops the old pod before it starts the new one (both want the port)."""
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec(node, port)},
        },
    }


def answer(port: int, path: str) -> Any:
    response = requests.get(f"http://127.0.0.1:{port}{path}", timeout=5)
    response.raise_for_status()
    return response.json()


def serving(port: int, uid: str | None = None) -> bool:
    """The target answers on `port` (from the pod with `uid`, if given: a pod it replaces may still hold the port)."""
    try:
        return bool(answer(port, "/clock")["pod"] == uid) if uid else bool(answer(port, "/healthz") == "ok")
    except requests.RequestException:
        return False


def start_pods(core: client.CoreV1Api, namespace: str, pods: dict[int, dict[str, Any]]) -> None:
    """Create the pods (by port) and wait until each answers on its port and the API has it Ready (its status
    then holds its containers' IDs, which gc.pause needs)."""
    for pod in pods.values():
        core.create_namespaced_pod(namespace, pod)
    for port, pod in pods.items():
        name = pod["metadata"]["name"]
        wait_for(f"pod {name} serving on {port}", lambda p=port: serving(p), timeout=START_S)
        wait_for(f"pod {name} Ready", lambda n=name: is_ready(core.read_namespaced_pod(n, namespace)), timeout=START_S)


def gaps(beats: list[float], since: float, longer_than: float) -> list[tuple[float, float]]:
    """(when, length) of each gap between consecutive beats after `since` that is longer than `longer_than`."""
    kept = [b for b in beats if b >= since]
    return [(a, b - a) for a, b in itertools.pairwise(kept) if b - a > longer_than]


def only_ours(core: client.CoreV1Api, node: RealNode, namespace: str) -> bool:
    """Whether every pod on the real node is in `namespace` (earlier tests' pods go with their namespaces, which
    takes a few seconds): a drain refuses a node that carries pods the drill may not touch."""
    pods = core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node.name}").items
    return all(p.metadata.namespace == namespace for p in pods)
