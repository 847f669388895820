"""Helpers and fixtures for every test against the real control plane (tests/fixtures/kube.py).

Test modules import the fixtures they use (`from tests.kube.support import kube_api, namespace`, listed
in `__all__`). `namespace` is a fresh namespace (prefix `ka-`, with its default ServiceAccount),
deleted after the test. Node faults are tried on a private pool of KWOK nodes that each test creates
(`pool`; KWOK adopts any node annotated `kwok.x-k8s.io/node: fake`), tainted so that only the test's
own pods land there: the shared kwok-node-* that other tests use are never cordoned, tainted or
deleted here. Waits poll with a deadline generous enough for a loaded 2-core machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from orchestrator.kube.access import KubeAccess
from orchestrator.kube.marks import PREFIX
from orchestrator.model.spec import KubernetesTargets
from orchestrator.model.undo import Undo
from tests.fixtures.kube import KubeCluster

T = TypeVar("T")

WAIT_S = 120.0
POLL_S = 0.2
POOL_TAINT = "drillctl-test/pool"


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = WAIT_S) -> T:
    """Poll `probe` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(POLL_S)


def is_ready(pod: client.V1Pod) -> bool:
    conditions = pod.status.conditions or []
    return pod.status.phase == "Running" and any(c.type == "Ready" and c.status == "True" for c in conditions)


def live_pods(core: client.CoreV1Api, ns: str, selector: str) -> list[client.V1Pod]:
    """Pods matching `selector` that are not being deleted."""
    pods = core.list_namespaced_pod(ns, label_selector=selector).items
    return [p for p in pods if p.metadata.deletion_timestamp is None]


def ready_pods(core: client.CoreV1Api, ns: str, selector: str, count: int) -> list[client.V1Pod] | None:
    """Exactly `count` live pods, all Ready; None otherwise."""
    pods = live_pods(core, ns, selector)
    return pods if len(pods) == count and all(is_ready(p) for p in pods) else None


def raw(fn: Callable[..., Any], *args: Any) -> dict[str, Any]:
    """An object as the API server stores it (camelCase JSON), as drillctl reads it."""
    document: dict[str, Any] = json.loads(fn(*args, _preload_content=False).data)
    return document


def drillctl_marks(obj: dict[str, Any]) -> dict[str, str]:
    return {k: v for k, v in (obj["metadata"].get("annotations") or {}).items() if k.startswith(PREFIX)}


def from_record(undo: Undo) -> Undo:
    """The undo as `drillctl recover` and the watchdog see it: through the journal's JSON."""
    return Undo.from_json(json.loads(json.dumps(undo.to_json())))


def inject(driver: Any, spec: Any, step_id: str) -> Undo:
    """prepare, then inject, as the engine does; the undo record."""

    async def go() -> Undo:
        undo: Undo = await driver.prepare(spec, step_id)
        await driver.inject(spec, undo)
        return undo

    return asyncio.run(go())


def deployment(
    name: str, replicas: int, ready_delay: str | None = None, grace: int = 1, **pod_spec: Any
) -> client.V1Deployment:
    """Pods labelled `app=<name>`, of an image no one pulls (KWOK runs nothing); `ready_delay` is KWOK's
    pod-ready delay."""
    labels = {"app": name}
    annotations = {"pod-ready.stage.kwok.x-k8s.io/delay": ready_delay} if ready_delay else None
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels, annotations=annotations),
                spec=client.V1PodSpec(
                    containers=[client.V1Container(name="app", image="registry.invalid/drillctl/app:1")],
                    termination_grace_period_seconds=grace,
                    **pod_spec,
                ),
            ),
        ),
    )


def wait_available(
    core: client.CoreV1Api, apps: client.AppsV1Api, ns: str, name: str, replicas: int, timeout: float = WAIT_S
) -> list[client.V1Pod]:
    """Wait until the Deployment's rollout is done with `replicas` available, and return its Ready pods."""

    def probe() -> list[client.V1Pod] | None:
        d = apps.read_namespaced_deployment(name, ns)
        s = d.status
        done = (s.observed_generation or 0) >= d.metadata.generation and all(
            (n or 0) == replicas for n in (s.available_replicas, s.updated_replicas, s.replicas)
        )
        return ready_pods(core, ns, f"app={name}", replicas) if done else None

    return wait_for(f"deployment {ns}/{name} to have {replicas} available replicas", probe, timeout)


def running_pod(
    core: client.CoreV1Api, namespace: str, name: str, memory_limit: str | None = None, share_pids: bool = True
) -> None:
    """A bare pod on kwok-node-1 (containers `app` and `proxy`, label app=svc, `shareProcessNamespace` as
    `share_pids`, which gc.pause needs), once KWOK reports it Running."""
    app: dict[str, Any] = {"name": "app", "image": "registry.invalid/drillctl/app:1"}
    if memory_limit:
        app["resources"] = {"limits": {"memory": memory_limit}}
    core.create_namespaced_pod(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "svc"}},
            "spec": {
                "nodeName": "kwok-node-1",
                "terminationGracePeriodSeconds": 1,
                "shareProcessNamespace": share_pids,
                "containers": [app, {"name": "proxy", "image": "registry.invalid/drillctl/proxy:1"}],
            },
        },
    )
    wait_for(f"pod {name} Running", lambda: core.read_namespaced_pod(name, namespace).status.phase == "Running")


def service_account_token(
    api: client.ApiClient, ns: str, name: str, rules: list[client.V1PolicyRule] | None = None
) -> str:
    """A real token of a new ServiceAccount, bound to a Role with `rules` (none: it may do nothing)."""
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    core.create_namespaced_service_account(ns, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name)))
    if rules:
        rbac.create_namespaced_role(ns, client.V1Role(metadata=client.V1ObjectMeta(name=name), rules=rules))
        rbac.create_namespaced_role_binding(
            ns,
            client.V1RoleBinding(
                metadata=client.V1ObjectMeta(name=name),
                role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name=name),
                subjects=[client.RbacV1Subject(kind="ServiceAccount", name=name, namespace=ns)],
            ),
        )
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600))
    token: str = core.create_namespaced_service_account_token(name, ns, request).status.token
    return token


def token_kubeconfig(admin: Path, token: str, user: str, folder: Path) -> Path:
    """The admin kubeconfig with every context's user replaced by `token`."""
    config = yaml.safe_load(admin.read_text(encoding="utf-8"))
    config["users"] = [{"name": user, "user": {"token": token}}]
    for context in config["contexts"]:
        context["context"]["user"] = user
    path = folder / f"{user}.kubeconfig"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


POD_READER = [client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["get", "list", "watch"])]


@dataclass
class Pool:
    """Private KWOK nodes of one test, and the namespace its pods live in."""

    tag: str
    namespace: str
    kubeconfig: Path
    core: client.CoreV1Api
    apps: client.AppsV1Api
    nodes: list[str] = field(default_factory=list)

    def access(self, **limits: Any) -> KubeAccess:
        return KubeAccess(
            kubeconfig=str(self.kubeconfig),
            namespace=self.namespace,
            limits=KubernetesTargets(**limits),
            horizon=60.0,
        )

    def add_node(self, labels: dict[str, str] | None = None) -> str:
        name = f"{self.tag}-{len(self.nodes)}"
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {"kubernetes.io/hostname": name, "ka-pool": self.tag, **(labels or {})},
            },
            "spec": {"taints": [{"key": POOL_TAINT, "value": self.tag, "effect": "NoSchedule"}]},
            "status": {
                "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            },
        }
        self.core.create_node(body)
        self.nodes.append(name)
        wait_for(f"KWOK to make node {name} Ready", lambda: self.node_ready(name), timeout=60)
        return name

    def node_ready(self, name: str) -> bool:
        try:
            node = self.core.read_node(name)
        except ApiException as e:
            if e.status == 404:
                return False
            raise
        ready = any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
        # The node lifecycle controller lifts node.kubernetes.io/not-ready shortly after Ready.
        return ready and all(t.key == POOL_TAINT for t in node.spec.taints or [])

    def node(self, name: str) -> dict[str, Any]:
        raw: Any = self.core.read_node(name, _preload_content=False)

        document: dict[str, Any] = json.loads(raw.data)
        return document

    def deployment(
        self, name: str, replicas: int, ready_delay: str | None = None, spread: bool = False
    ) -> client.V1Deployment:
        """A Deployment whose pods only land on this pool; `spread` places them evenly over its nodes."""
        spec: dict[str, Any] = {
            "node_selector": {"ka-pool": self.tag},
            "tolerations": [client.V1Toleration(key=POOL_TAINT, operator="Exists", effect="NoSchedule")],
        }
        if spread:
            spec["topology_spread_constraints"] = [
                client.V1TopologySpreadConstraint(
                    max_skew=1,
                    topology_key="kubernetes.io/hostname",
                    when_unsatisfiable="DoNotSchedule",
                    label_selector=client.V1LabelSelector(match_labels={"app": name}),
                    node_taints_policy="Honor",
                )
            ]
        body = deployment(name, replicas, ready_delay, **spec)
        return self.apps.create_namespaced_deployment(self.namespace, body)

    def wait_available(self, name: str, replicas: int, timeout: float = WAIT_S) -> list[client.V1Pod]:
        return wait_available(self.core, self.apps, self.namespace, name, replicas, timeout)

    def pods_by_node(self, app: str) -> dict[str, list[str]]:
        placed: dict[str, list[str]] = {}
        for pod in live_pods(self.core, self.namespace, f"app={app}"):
            placed.setdefault(pod.spec.node_name, []).append(pod.metadata.name)
        return placed


@pytest.fixture(scope="module")
def kube_api(kube_cluster: KubeCluster) -> Iterator[client.ApiClient]:
    api = kube_cluster.api_client()
    yield api
    api.close()


@contextlib.contextmanager
def fresh_namespace(core: client.CoreV1Api, name: str, labels: dict[str, str] | None = None) -> Iterator[str]:
    """Create the namespace, wait for its default ServiceAccount (pods need it), delete it afterwards."""
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels)))
    wait_for(f"default ServiceAccount in {name}", lambda: _has_default_sa(core, name), timeout=60)
    try:
        yield name
    finally:
        core.delete_namespace(name, body=client.V1DeleteOptions(propagation_policy="Background"))


def _test_name(request: pytest.FixtureRequest, tag: str) -> str:
    """`<tag>-<test name>`, cut and cleaned to a valid namespace name."""
    base = re.sub(r"[^a-z0-9-]+", "-", request.node.name.removeprefix("test_").lower())[:30].strip("-")
    return f"{tag}-{base}".strip("-")[:63].rstrip("-")


@pytest.fixture
def namespace(kube_api: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace of this test (`ka-<random>-<test name>`), deleted afterwards."""
    with fresh_namespace(client.CoreV1Api(kube_api), _test_name(request, f"ka-{uuid.uuid4().hex[:8]}")) as name:
        yield name


@pytest.fixture
def pool(kube_cluster: KubeCluster, kube_api: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[Pool]:
    """A fresh namespace and a private node pool (empty: tests add nodes), both deleted afterwards."""
    core = client.CoreV1Api(kube_api)
    tag = f"ka-{uuid.uuid4().hex[:8]}"
    with fresh_namespace(core, _test_name(request, tag), {"ka-pool": tag}) as ns:
        try:
            yield Pool(tag, ns, kube_cluster.kubeconfig, core, client.AppsV1Api(kube_api))
        finally:
            for node in core.list_node(label_selector=f"ka-pool={tag}").items:
                try:
                    core.delete_node(node.metadata.name)
                except ApiException as e:
                    if e.status != 404:
                        raise


def _has_default_sa(core: client.CoreV1Api, namespace: str) -> bool:
    try:
        core.read_namespaced_service_account("default", namespace)
        return True
    except ApiException as e:
        if e.status == 404:
            return False
        raise
