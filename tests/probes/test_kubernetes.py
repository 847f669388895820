"""The kubernetes probe and its shared watch cache, against the real control plane (kube-apiserver,
controller-manager, scheduler, KWOK) and, for API outages, a real Toxiproxy in front of the API server.

Each test works in a namespace of its own (the `namespace` fixture of tests/kube/support.py) and on a
Node object of its own (never a shared KWOK node), and deletes them at the end. Flips are seen through
a real open-loop Sampler.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import TypeAdapter

from orchestrator.errors import SpecError
from orchestrator.kube.access import KubeAccess, connect
from orchestrator.kube.watch_cache import WatchCache, acquire, release
from orchestrator.loading import validate_model
from orchestrator.model.spec import ProbeSpec, SteadyState, parse_label_selector
from orchestrator.model.timeline import Sample
from orchestrator.probes.kubernetes import KubernetesProbe, judge_node, judge_pods, judge_workload, labels_match
from orchestrator.probes.registry import build_probe
from orchestrator.sampling import Recorder, Sampler
from tests.fixtures.kube import KubeCluster
from tests.fixtures.toxiproxy import ToxiproxyServer, free_port
from tests.kube.support import deployment as kube_deployment
from tests.kube.support import kube_api, namespace, service_account_token, token_kubeconfig

__all__ = ["kube_api", "namespace"]

WAIT_S = 120.0  # a rollout or a reschedule on a loaded 2-core machine
INTERVAL = 0.05
READY_DELAY = "3s"  # KWOK marks our pods Ready this long after scheduling: a failing window samples cannot miss
PROBES = TypeAdapter(ProbeSpec)


# ---- pure parts ----------------------------------------------------------------------------------


def probe_spec(**fields: Any) -> Any:
    return PROBES.validate_python({"type": "kubernetes", "name": "k", **fields})


def test_spec_shapes_and_clear_errors() -> None:
    spec = probe_spec(check="available_replicas", kind="StatefulSet", workload="db", min=2)
    assert (spec.kind, spec.workload, spec.min, spec.namespace) == ("StatefulSet", "db", 2, None)
    assert probe_spec(check="node_ready", node="n1").allow_unschedulable is False

    cases = {
        "min": (dict(check="available_replicas", kind="Deployment", workload="w", min=0), "greater than or equal to 1"),
        "kind": (
            dict(check="available_replicas", kind="DaemonSet", workload="w", min=1),
            "'Deployment' or 'StatefulSet'",
        ),
        "label_selector": (
            dict(check="ready_pods", label_selector="app in (a", min=1),
            "not a label selector term: 'app in (a'",
        ),
        "node": (dict(check="node_ready"), "required field is missing"),
        "check": (dict(check="pods_running", node="n"), "unknown check 'pods_running'"),
        "workload": (dict(check="ready_pods", label_selector="a=b", min=1, workload="w"), "unknown field"),
    }
    for field, (fields, message) in cases.items():
        probe = {"type": "kubernetes", "name": "k", **fields}
        with pytest.raises(SpecError) as bad:
            validate_model(SteadyState, {"probes": [probe]}, {}, "drill.yaml")
        [issue] = bad.value.issues
        assert issue.field == f"probes[0].{field}", issue
        assert message in issue.message, issue


def test_label_selectors_match_like_kubectl() -> None:
    labels = {"app": "web", "tier": "front", "example.com/team": "a"}
    expected = {
        "": True,
        "app=web": True,
        "app==web,tier=front": True,
        "app=db": False,
        "app!=db": True,
        "missing!=x": True,
        "tier in (front, back)": True,
        "tier notin (front)": False,
        "missing notin (x)": True,
        "example.com/team": True,
        "!example.com/team": False,
        "!canary,app": True,
        "missing": False,
    }
    for selector, match in expected.items():
        assert labels_match(labels, parse_label_selector(selector)) is match, selector


def pod(name: str, ready: bool, deleting: bool = False, **labels: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": labels}
    if deleting:
        metadata["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return {"metadata": metadata, "status": {"conditions": [{"type": "Ready", "status": str(ready)}]}}


def test_verdicts_from_objects() -> None:
    assert judge_workload(None, "Deployment", "ns/web", 1) == "Deployment ns/web not found"
    assert (
        judge_workload({"status": {}}, "Deployment", "ns/web", 1) == "Deployment ns/web: 0 available replicas, need 1"
    )
    assert judge_workload({"status": {"availableReplicas": 3}}, "StatefulSet", "ns/db", 3) is None

    selector = parse_label_selector("app=web")
    pods = [pod("a", True, app="web"), pod("b", True, deleting=True, app="web"), pod("c", True, app="db")]
    assert judge_pods(pods, selector, 1, "x") is None
    assert judge_pods(pods, selector, 2, "'app=web'") == "1 of 2 pods matching 'app=web' Ready, need 2"

    ready = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}, "spec": {}}
    assert judge_node(ready, "n", False) is None
    assert judge_node(None, "n", False) == "node n not found"
    cordoned = {**ready, "spec": {"unschedulable": True}}
    assert judge_node(cordoned, "n", False) == "node n is cordoned (unschedulable)"
    assert judge_node(cordoned, "n", True) is None
    down = {"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "KubeletDown", "message": "x"}]}}
    assert judge_node(down, "n", False) == "node n is not Ready: Ready=False (KubeletDown: x)"


# ---- helpers for the cluster tests ---------------------------------------------------------------


@pytest.fixture
def own_node(kube_api: client.ApiClient) -> Iterator[str]:
    """A Node object of this test's own, Ready, that no KWOK controller manages (so the test sets its status)
    and no pod lands on (a NoSchedule taint): shared KWOK nodes stay untouched for parallel tests."""
    core = client.CoreV1Api(kube_api)
    name = f"kb-probe-node-{uuid.uuid4().hex[:8]}"
    core.create_node(
        client.V1Node(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V1NodeSpec(taints=[client.V1Taint(key="drillctl.test/kb-probe", effect="NoSchedule")]),
        )
    )
    set_node_ready(core, name, "True")
    yield name
    with contextlib.suppress(ApiException):
        core.delete_node(name)


def set_node_ready(core: client.CoreV1Api, node: str, status: str) -> None:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    condition = {"type": "Ready", "status": status, "reason": "KbProbeTest", "message": f"set {status} by the test"}
    condition |= {"lastHeartbeatTime": now, "lastTransitionTime": now}
    core.patch_node_status(node, {"status": {"conditions": [condition]}})


def deployment(name: str, replicas: int) -> client.V1Deployment:
    return kube_deployment(name, replicas, ready_delay=READY_DELAY, grace=0)


class Sampling:
    """Real open-loop samplers over probes; waits for a probe's next sample with a given verdict."""

    def __init__(self) -> None:
        self.recorder = Recorder()
        self.tasks: list[asyncio.Task[None]] = []

    def start(self, *probes: Any) -> None:
        t0 = asyncio.get_running_loop().time()
        for probe in probes:
            self.tasks.append(asyncio.create_task(Sampler(probe, INTERVAL, t0, 50, self.recorder).run()))

    async def next(self, probe: str, ok: bool, within: float = WAIT_S) -> Sample:
        found: asyncio.Future[Sample] = asyncio.get_running_loop().create_future()

        def listen(sample: Sample) -> None:
            if sample.probe == probe and sample.ok is ok and not found.done():
                found.set_result(sample)

        self.recorder.listeners.append(listen)
        try:
            async with asyncio.timeout(within):
                return await found
        except TimeoutError:
            last = [s for s in self.recorder.samples if s.probe == probe][-3:]
            pytest.fail(f"{probe}: no sample with ok={ok} in {within:g}s; last: {last}")
        finally:
            self.recorder.listeners.remove(listen)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def sampling(*probes: Any) -> AsyncIterator[Sampling]:
    runs = Sampling()
    runs.start(*probes)
    try:
        yield runs
    finally:
        await runs.stop()
        for probe in probes:
            await probe.close()


def in_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return asyncio.to_thread(fn, *args, **kwargs)


# ---- against the control plane -------------------------------------------------------------------


def test_deployment_scaled_down_and_pods_deleted_flip_the_probes(
    kube_cluster: KubeCluster, kube_api: client.ApiClient, namespace: str
) -> None:
    apps, core = client.AppsV1Api(kube_api), client.CoreV1Api(kube_api)
    access = KubeAccess(str(kube_cluster.kubeconfig), namespace=namespace)
    apps.create_namespaced_deployment(namespace, deployment("web", 3))

    async def scenario() -> None:
        available = build_probe(
            probe_spec(check="available_replicas", kind="Deployment", workload="web", min=3), 50, Path(), access
        )
        pods = build_probe(
            probe_spec(name="pods", check="ready_pods", label_selector="app=web,!canary", min=3), 50, Path(), access
        )
        async with sampling(available, pods) as runs:
            await runs.next("k", ok=True)
            await runs.next("pods", ok=True)

            await in_thread(apps.patch_namespaced_deployment_scale, "web", namespace, {"spec": {"replicas": 1}})
            failed = await runs.next("k", ok=False)
            assert failed.error == f"Deployment {namespace}/web: 1 available replicas, need 3"
            failed = await runs.next("pods", ok=False)
            assert failed.error == f"1 of 1 pods matching 'app=web,!canary' in {namespace} Ready, need 3"

            await in_thread(apps.patch_namespaced_deployment_scale, "web", namespace, {"spec": {"replicas": 3}})
            back = await runs.next("k", ok=True)
            assert back.at > failed.at
            await runs.next("pods", ok=True)

            # Every pod deleted: the ReplicaSet replaces them, KWOK makes them Ready after READY_DELAY.
            await in_thread(core.delete_collection_namespaced_pod, namespace, label_selector="app=web")
            down = await runs.next("pods", ok=False)
            assert "pods matching 'app=web,!canary'" in (down.error or "")
            up = await runs.next("pods", ok=True)
            assert up.at - down.at >= 1.0, "replacement pods are Ready only after KWOK's delay"
            await runs.next("k", ok=True)

    asyncio.run(scenario())


def test_statefulset_available_replicas(kube_cluster: KubeCluster, kube_api: client.ApiClient, namespace: str) -> None:
    apps = client.AppsV1Api(kube_api)
    access = KubeAccess(str(kube_cluster.kubeconfig), namespace=namespace)
    template = deployment("db", 2).spec.template
    apps.create_namespaced_stateful_set(
        namespace,
        client.V1StatefulSet(
            metadata=client.V1ObjectMeta(name="db"),
            spec=client.V1StatefulSetSpec(
                replicas=2,
                service_name="db",
                selector=client.V1LabelSelector(match_labels={"app": "db"}),
                template=template,
            ),
        ),
    )

    async def scenario() -> None:
        probe = build_probe(
            probe_spec(check="available_replicas", kind="StatefulSet", workload="db", min=2), 50, Path(), access
        )
        missing = build_probe(
            probe_spec(name="missing", check="available_replicas", kind="StatefulSet", workload="nope", min=1),
            50,
            Path(),
            access,
        )
        async with sampling(probe, missing) as runs:
            await runs.next("k", ok=True)
            gone = await runs.next("missing", ok=False)
            assert gone.error == f"StatefulSet {namespace}/nope not found"
            await in_thread(apps.patch_namespaced_stateful_set_scale, "db", namespace, {"spec": {"replicas": 1}})
            failed = await runs.next("k", ok=False)
            assert failed.error == f"StatefulSet {namespace}/db: 1 available replicas, need 2"
            assert probe._cache is missing._cache, "one cache per kind and namespace"

    asyncio.run(scenario())


def test_node_ready_follows_readiness_cordon_and_deletion(
    kube_cluster: KubeCluster, kube_api: client.ApiClient, own_node: str
) -> None:
    core = client.CoreV1Api(kube_api)
    access = KubeAccess(str(kube_cluster.kubeconfig))

    async def scenario() -> None:
        probe = build_probe(probe_spec(check="node_ready", node=own_node), 50, Path(), access)
        async with sampling(probe) as runs:
            await runs.next("k", ok=True)

            await in_thread(set_node_ready, core, own_node, "False")
            failed = await runs.next("k", ok=False)
            assert failed.error == f"node {own_node} is not Ready: Ready=False (KbProbeTest: set False by the test)"
            await in_thread(set_node_ready, core, own_node, "True")
            await runs.next("k", ok=True)

            await in_thread(core.patch_node, own_node, {"spec": {"unschedulable": True}})
            failed = await runs.next("k", ok=False)
            assert failed.error == f"node {own_node} is cordoned (unschedulable)"
            await in_thread(core.patch_node, own_node, {"spec": {"unschedulable": False}})
            await runs.next("k", ok=True)

            await in_thread(core.delete_node, own_node)
            failed = await runs.next("k", ok=False)
            assert failed.error == f"node {own_node} not found"

    asyncio.run(scenario())


def test_many_probes_share_one_list_and_watch(
    kube_cluster: KubeCluster, kube_api: client.ApiClient, namespace: str
) -> None:
    """40 probes on pods of one namespace at 20 Hz: one cache, one list, watches only as the watch timeout
    dictates; none of it grows with the number of probes or samples."""
    apps = client.AppsV1Api(kube_api)
    access = KubeAccess(str(kube_cluster.kubeconfig), namespace=namespace)
    apps.create_namespaced_deployment(namespace, deployment("api", 2))

    async def scenario() -> None:
        probes = [
            build_probe(
                probe_spec(name=f"p{i}", check="ready_pods", label_selector="app=api", min=2), 50, Path(), access
            )
            for i in range(40)
        ]
        assert isinstance(probes[0], KubernetesProbe)
        started = time.monotonic()
        async with sampling(*probes) as runs:
            await runs.next("p0", ok=True)
            cache = probes[0]._cache
            assert cache is not None
            assert all(p._cache is cache for p in probes if isinstance(p, KubernetesProbe))
            await asyncio.sleep(3.0)
            samples = len(runs.recorder.samples)
            stats = cache.stats()
            elapsed = time.monotonic() - started
            assert samples >= 40 * 20, f"only {samples} samples: the sampler could not keep up"
            assert stats.lists == 1, stats
            assert stats.watches <= elapsed / cache.watch_timeout + 2, (stats, elapsed)
        assert cache.join(0), "closing the last probe stopped the watch thread"

    asyncio.run(scenario())


def test_closing_stops_the_watch_thread_within_a_bound(kube_cluster: KubeCluster) -> None:
    conn = connect(KubeAccess(str(kube_cluster.kubeconfig)))

    async def scenario() -> None:
        cache = acquire(conn, "Node", None)
        async with asyncio.timeout(30):
            await cache.wait_settled()
        assert cache.snapshot().synced
        assert cache.join(0.5) is False, "a synced cache keeps watching"
        stopping = time.monotonic()
        await release(cache)
        took = time.monotonic() - stopping
        assert cache.join(0), "the thread has ended"
        assert took < 3.0, f"stopping took {took:.2f}s"
        assert acquire(conn, "Node", None) is not cache, "a released cache is not handed out again"

    asyncio.run(scenario())


def test_missing_rbac_permission_fails_samples_with_the_api_message(
    kube_cluster: KubeCluster, kube_api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    """A service account with no role: the API server refuses the list, the sample says so."""
    token = service_account_token(kube_api, namespace, "nobody")
    kubeconfig = token_kubeconfig(kube_cluster.kubeconfig, token, "nobody", tmp_path)

    async def scenario() -> None:
        probe = build_probe(probe_spec(check="node_ready", node="kwok-node-0"), 50, Path(), KubeAccess(str(kubeconfig)))
        try:
            seen = await probe.observe()
        finally:
            await probe.close()
        assert not seen.ok
        assert seen.error is not None and "watch of Nodes at https://127.0.0.1" in seen.error
        assert (
            f'HTTP 403: nodes is forbidden: User "system:serviceaccount:{namespace}:nobody" cannot list' in seen.error
        )

    asyncio.run(scenario())


# ---- API outages, through a real Toxiproxy in front of the API server ------------------------------


@pytest.fixture
def proxied_kubeconfig(kube_cluster: KubeCluster, toxiproxy: ToxiproxyServer, tmp_path: Path) -> tuple[str, str]:
    """A kubeconfig whose server is a Toxiproxy proxy to the API server; returns (path, proxy URL)."""
    config = yaml.safe_load(kube_cluster.kubeconfig.read_text())
    upstream = config["clusters"][0]["cluster"]["server"].removeprefix("https://")
    listen = f"127.0.0.1:{free_port()}"
    proxy = {"name": "kb-apiserver", "listen": listen, "upstream": upstream, "enabled": True}
    requests.post(f"{toxiproxy.url}/proxies", json=proxy, timeout=5).raise_for_status()
    config["clusters"][0]["cluster"]["server"] = f"https://{listen}"  # the API server's cert names 127.0.0.1
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return str(path), f"{toxiproxy.url}/proxies/kb-apiserver"


def test_api_server_unreachable_fails_samples_until_it_is_back(proxied_kubeconfig: tuple[str, str]) -> None:
    kubeconfig, proxy = proxied_kubeconfig

    async def scenario() -> None:
        probe = build_probe(
            probe_spec(check="node_ready", node="kwok-node-0", allow_unschedulable=True),
            50,
            Path(),
            KubeAccess(kubeconfig),
        )
        async with sampling(probe) as runs:
            await runs.next("k", ok=True)
            await in_thread(requests.post, proxy, json={"enabled": False}, timeout=5)
            failed = await runs.next("k", ok=False, within=30)
            assert failed.error is not None and "watch of Nodes at https://127.0.0.1" in failed.error
            assert "not found" not in failed.error, "an outage is not a verdict on the node"
            await in_thread(requests.post, proxy, json={"enabled": True}, timeout=5)
            back = await runs.next("k", ok=True, within=30)
            assert back.at > failed.at

    asyncio.run(scenario())


def test_api_server_hanging_makes_the_cache_stale_never_a_pass(proxied_kubeconfig: tuple[str, str]) -> None:
    """A server that stops answering on an open watch (a Toxiproxy `timeout` toxic holding all data):
    no error ever arrives, so only the staleness bound can fail the samples."""
    kubeconfig, proxy = proxied_kubeconfig
    conn = connect(KubeAccess(kubeconfig))

    async def scenario() -> None:
        cache = WatchCache(conn, "Node", None, watch_timeout=2.0)
        cache.start()
        try:
            async with asyncio.timeout(30):
                await cache.wait_settled()
            assert cache.problem(cache.snapshot(), time.monotonic()) is None
            toxic = {"name": "hold", "type": "timeout", "stream": "downstream", "attributes": {"timeout": 0}}
            await in_thread(requests.post, f"{proxy}/toxics", json=toxic, timeout=5)
            held = time.monotonic()
            deadline = held + 4 * cache.stale_after + 10
            while (problem := cache.problem(cache.snapshot(), time.monotonic())) is None:
                assert time.monotonic() < deadline, "a hung API server never made the cache fail"
                await asyncio.sleep(0.1)
            assert "stale, no word from the API server" in problem or "ReadTimeout" in problem, problem
            assert time.monotonic() - held <= 2 * cache.stale_after + 2 * cache.watch_timeout + 5
            await in_thread(requests.delete, f"{proxy}/toxics/hold", timeout=5)
            deadline = time.monotonic() + 30
            while cache.problem(cache.snapshot(), time.monotonic()) is not None:
                assert time.monotonic() < deadline, "the cache did not recover after the toxic went"
                await asyncio.sleep(0.1)
        finally:
            cache.stop()
            await asyncio.to_thread(cache.join, 5)

    asyncio.run(scenario())
