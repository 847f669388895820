"""The local control plane (scripts/k8s/up.sh) behaves like a real cluster.

Everything here goes through the official ``kubernetes`` client against a real
kube-apiserver, kube-controller-manager and kube-scheduler; KWOK plays the
kubelets. Each test works in its own namespace and undoes what it changed on
shared nodes. Every wait is a poll with a deadline, generous enough for a loaded
2-core machine (helpers and fixtures: tests/kube/support.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.fixtures.kube import KubeCluster
from tests.kube.support import (
    POD_READER,
    deployment,
    is_ready,
    kube_api,
    live_pods,
    namespace,
    ready_pods,
    service_account_token,
    wait_available,
    wait_for,
)

__all__ = ["kube_api", "namespace"]

WAIT_S = 120.0  # deadline for one rollout / reschedule
POLL_S = 0.5
TEST_TAINT_KEY = "drillctl.test/chaos"


# ---- helpers -------------------------------------------------------------------


def evict(core: client.CoreV1Api, pod: client.V1Pod) -> None:
    body = client.V1Eviction(metadata=client.V1ObjectMeta(name=pod.metadata.name, namespace=pod.metadata.namespace))
    core.create_namespaced_pod_eviction(pod.metadata.name, pod.metadata.namespace, body)


def update_node_taints(core: client.CoreV1Api, node: str, change: Callable[[list[Any]], list[Any]]) -> None:
    """Read-modify-write the node's taints (retrying on conflicts with node controllers)."""
    deadline = time.monotonic() + 60
    while True:
        n = core.read_node(node)
        n.spec.taints = change(list(n.spec.taints or []))
        try:
            core.replace_node(node, n)
            return
        except ApiException as exc:
            if exc.status != 409 or time.monotonic() >= deadline:
                raise


def schedulable_kwok_nodes(core: client.CoreV1Api) -> list[str]:
    """KWOK nodes an ordinary pod may land on (no NoSchedule/NoExecute taints, not cordoned)."""
    names = []
    for n in core.list_node(label_selector="type=kwok").items:
        taints = [t for t in (n.spec.taints or []) if t.effect in ("NoSchedule", "NoExecute")]
        if not taints and not n.spec.unschedulable:
            names.append(n.metadata.name)
    return sorted(names)


# ---- fixtures --------------------------------------------------------------------


@pytest.fixture
def core(kube_api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(kube_api)


@pytest.fixture
def apps(kube_api: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(kube_api)


@pytest.fixture
def all_nodes_schedulable(core: client.CoreV1Api) -> list[str]:
    """The schedulable KWOK nodes; fails early if a previous run left one cordoned/tainted."""
    nodes = wait_for("3 schedulable KWOK nodes", lambda: n if len(n := schedulable_kwok_nodes(core)) >= 3 else None)
    return nodes


# ---- tests ---------------------------------------------------------------------


def test_deployment_becomes_available_on_kwok_nodes(
    core: client.CoreV1Api, apps: client.AppsV1Api, namespace: str, all_nodes_schedulable: list[str]
) -> None:
    apps.create_namespaced_deployment(namespace, deployment("web", 3))

    wait_available(core, apps, namespace, "web", 3)

    pods = live_pods(core, namespace, "app=web")
    assert len(pods) == 3
    kwok_nodes = {n.metadata.name: n for n in core.list_node(label_selector="type=kwok").items}
    for pod in pods:
        assert is_ready(pod), pod.metadata.name
        assert pod.status.pod_ip, "KWOK assigns a pod IP"
        # Placed by the scheduler on a simulated node, never on the tainted infra node.
        assert pod.spec.node_name in all_nodes_schedulable
        assert kwok_nodes[pod.spec.node_name].metadata.annotations["kwok.x-k8s.io/node"] == "fake"


def test_deleted_pod_is_replaced_by_replicaset(
    core: client.CoreV1Api, apps: client.AppsV1Api, namespace: str, all_nodes_schedulable: list[str]
) -> None:
    apps.create_namespaced_deployment(namespace, deployment("api", 2))
    wait_available(core, apps, namespace, "api", 2)
    before = live_pods(core, namespace, "app=api")
    victim = before[0]
    owner = victim.metadata.owner_references[0]
    assert owner.kind == "ReplicaSet"

    core.delete_namespaced_pod(victim.metadata.name, namespace)

    def replaced() -> list[client.V1Pod] | None:
        pods = core.list_namespaced_pod(namespace, label_selector="app=api").items
        if any(p.metadata.uid == victim.metadata.uid for p in pods):
            return None  # KWOK has not finished the deletion yet
        ready = ready_pods(core, namespace, "app=api", 2)
        return ready

    after = wait_for("a Ready replacement for the deleted pod", replaced)
    new = [p for p in after if p.metadata.uid not in {b.metadata.uid for b in before}]
    assert len(new) == 1
    replacement = new[0]
    assert replacement.metadata.owner_references[0].uid == owner.uid, "created by the same ReplicaSet"
    assert replacement.spec.node_name in all_nodes_schedulable, "placed by the scheduler"
    assert is_ready(replacement)
    wait_available(core, apps, namespace, "api", 2)


def test_drain_with_eviction_api_honours_pod_disruption_budget(
    core: client.CoreV1Api, apps: client.AppsV1Api, namespace: str, all_nodes_schedulable: list[str]
) -> None:
    policy = client.PolicyV1Api(core.api_client)
    apps.create_namespaced_deployment(namespace, deployment("db", 3))
    wait_available(core, apps, namespace, "db", 3)
    # A budget that allows no disruption at all.
    policy.create_namespaced_pod_disruption_budget(
        namespace,
        client.V1PodDisruptionBudget(
            metadata=client.V1ObjectMeta(name="db"),
            spec=client.V1PodDisruptionBudgetSpec(
                min_available=3, selector=client.V1LabelSelector(match_labels={"app": "db"})
            ),
        ),
    )

    def pdb_status(allowed: int) -> Callable[[], bool]:
        def probe() -> bool:
            pdb = policy.read_namespaced_pod_disruption_budget("db", namespace)
            s = pdb.status
            return bool(
                s
                and (s.observed_generation or 0) >= pdb.metadata.generation
                and s.current_healthy == 3
                and s.disruptions_allowed == allowed
            )

        return probe

    wait_for("PDB status: 3 healthy, 0 disruptions allowed", pdb_status(0))

    pods = live_pods(core, namespace, "app=db")
    node = pods[0].spec.node_name
    on_node = [p for p in pods if p.spec.node_name == node]
    core.patch_node(node, {"spec": {"unschedulable": True}})  # cordon
    try:
        # An eviction that would break the budget is refused with 429.
        with pytest.raises(ApiException) as refused:
            evict(core, on_node[0])
        assert refused.value.status == 429, refused.value
        assert "disruption budget" in refused.value.body
        still = core.read_namespaced_pod(on_node[0].metadata.name, namespace)
        assert still.metadata.deletion_timestamp is None, "a refused eviction must not delete the pod"

        # Relax the budget to allow one pod down at a time, then drain like `kubectl drain`.
        policy.patch_namespaced_pod_disruption_budget("db", namespace, {"spec": {"minAvailable": 2}})
        wait_for("PDB status: 1 disruption allowed", pdb_status(1))

        evicted: set[str] = set()
        refusals = 0
        deadline = time.monotonic() + 2 * WAIT_S
        while True:
            remaining = [p for p in live_pods(core, namespace, "app=db") if p.spec.node_name == node]
            if not remaining:
                break
            assert time.monotonic() < deadline, f"drain of {node} did not finish: {remaining}"
            for pod in remaining:
                try:
                    evict(core, pod)
                    evicted.add(pod.metadata.name)
                except ApiException as exc:
                    if exc.status != 429:
                        raise
                    refusals += 1  # budget exhausted until the replacement is Ready
            # The budget must hold throughout: never fewer than 2 Ready pods.
            assert sum(is_ready(p) for p in live_pods(core, namespace, "app=db")) >= 2
            time.sleep(POLL_S)

        assert evicted == {p.metadata.name for p in on_node}
        # Replacements went elsewhere: the node is cordoned.
        after = wait_for("3 Ready db pods after the drain", lambda: ready_pods(core, namespace, "app=db", 3))
        assert all(p.spec.node_name != node for p in after)
        assert core.read_node(node).spec.unschedulable is True
        wait_available(core, apps, namespace, "db", 3)
    finally:
        core.patch_node(node, {"spec": {"unschedulable": False}})  # uncordon


def test_noexecute_taint_evicts_pods_and_they_come_back_elsewhere(
    core: client.CoreV1Api, apps: client.AppsV1Api, namespace: str, all_nodes_schedulable: list[str]
) -> None:
    apps.create_namespaced_deployment(namespace, deployment("cache", 3))
    wait_available(core, apps, namespace, "cache", 3)
    pods = live_pods(core, namespace, "app=cache")
    node = pods[0].spec.node_name
    victims = {p.metadata.uid for p in pods if p.spec.node_name == node}
    victim_names = {p.metadata.name for p in pods if p.spec.node_name == node}
    # Pods get default tolerations only for node.kubernetes.io/not-ready and
    # .../unreachable (DefaultTolerationSeconds); none for our own key.
    for pod in pods:
        assert not any(t.key == TEST_TAINT_KEY for t in (pod.spec.tolerations or []))

    taint = client.V1Taint(key=TEST_TAINT_KEY, value="evict", effect="NoExecute")
    update_node_taints(core, node, lambda taints: [*taints, taint])
    try:

        def rescheduled() -> list[client.V1Pod] | None:
            all_pods = core.list_namespaced_pod(namespace, label_selector="app=cache").items
            if any(p.metadata.uid in victims for p in all_pods):
                return None  # the taint-eviction controller / KWOK are not done yet
            return ready_pods(core, namespace, "app=cache", 3)

        after = wait_for(f"pods evicted from tainted {node} to be Ready elsewhere", rescheduled)
        assert all(p.spec.node_name != node for p in after)
        assert all(p.spec.node_name in all_nodes_schedulable for p in after)

        def eviction_events() -> set[str] | None:
            # The controller records why it deleted each pod (by name; it sets no uid).
            events = core.list_namespaced_event(namespace).items
            names = {e.involved_object.name for e in events if e.reason == "TaintManagerEviction"}
            return names if names >= victim_names else None

        wait_for("a TaintManagerEviction event for every evicted pod", eviction_events, timeout=60)
    finally:
        update_node_taints(core, node, lambda taints: [t for t in taints if t.key != TEST_TAINT_KEY])


def test_rbac_is_enforced_for_service_account_tokens(
    kube_cluster: KubeCluster, core: client.CoreV1Api, kube_api: client.ApiClient, namespace: str
) -> None:
    token = service_account_token(kube_api, namespace, "reader", POD_READER)
    assert token.count(".") == 2, "a signed JWT"

    cfg = client.Configuration()
    cfg.host = kube_api.configuration.host
    cfg.ssl_ca_cert = kube_api.configuration.ssl_ca_cert
    cfg.api_key = {"authorization": f"Bearer {token}"}
    with client.ApiClient(cfg) as sa_api:
        sa_core = client.CoreV1Api(sa_api)

        def allowed() -> bool:
            try:
                sa_core.list_namespaced_pod(namespace)
                return True
            except ApiException as exc:
                if exc.status == 403:
                    return False  # the RBAC authorizer's cache has not seen the binding yet
                raise

        # Granted by the Role.
        wait_for("the RoleBinding to take effect", allowed, timeout=60)

        # Not granted: other verbs, other resources, other namespaces.
        pod = client.V1Pod(
            metadata=client.V1ObjectMeta(name="nope"),
            spec=client.V1PodSpec(containers=[client.V1Container(name="app", image="registry.invalid/x:1")]),
        )
        forbidden: list[Callable[[], Any]] = [
            lambda: sa_core.create_namespaced_pod(namespace, pod),
            lambda: sa_core.list_namespaced_secret(namespace),
            lambda: sa_core.list_namespaced_pod("default"),
            lambda: sa_core.list_node(),
        ]
        for call in forbidden:
            with pytest.raises(ApiException) as denied:
                call()
            assert denied.value.status == 403, denied.value
            assert f"system:serviceaccount:{namespace}:reader" in denied.value.body

        # The API server agrees when asked directly.
        review = client.AuthorizationV1Api(sa_api).create_self_subject_access_review(
            client.V1SelfSubjectAccessReview(
                spec=client.V1SelfSubjectAccessReviewSpec(
                    resource_attributes=client.V1ResourceAttributes(namespace=namespace, verb="delete", resource="pods")
                )
            )
        )
        assert review.status.allowed is False

    # A token that is not signed by the cluster is rejected outright (401).
    bad = client.Configuration()
    bad.host = cfg.host
    bad.ssl_ca_cert = cfg.ssl_ca_cert
    bad.api_key = {"authorization": "Bearer " + token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")}
    with client.ApiClient(bad) as bad_api, pytest.raises(ApiException) as unauthorized:
        client.CoreV1Api(bad_api).list_namespaced_pod(namespace)
    assert unauthorized.value.status == 401
    assert kube_cluster.kubeconfig.exists()
