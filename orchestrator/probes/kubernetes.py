"""Kubernetes probe: a workload's available replicas, Ready pods by selector, or a node's readiness.

Every sample reads a shared watch-fed cache (`kube/watch_cache.py`), never the API server, so a
hundred probes at 10 Hz cost one watch per (kind, namespace). A cache that is not synced, failing
or stale fails the sample with the reason: an API outage is a run of failures, never a stale pass.
The sample's latency is the time to answer from the cache (or to wait for its first sync).
The verdicts themselves are pure functions of the cached objects (`judge_*`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from typing import Any

from orchestrator.errors import DrillError
from orchestrator.kube.access import KubeAccess, connect
from orchestrator.kube.watch_cache import Kind, Obj, WatchCache, acquire, release
from orchestrator.model.spec import KubernetesProbe as KubernetesProbeSpec
from orchestrator.model.spec import (
    LabelOp,
    NodeReadyProbe,
    PodsReadyProbe,
    WorkloadAvailableProbe,
    parse_label_selector,
)
from orchestrator.probes.base import Observation

Requirement = tuple[str, LabelOp, frozenset[str]]


class KubernetesProbe:
    def __init__(self, spec: KubernetesProbeSpec, kube: KubeAccess) -> None:
        self.name = spec.name
        self.timeout = spec.timeout
        self._spec = spec
        self._kube = kube
        self._selector: tuple[Requirement, ...] = (
            parse_label_selector(spec.label_selector) if isinstance(spec, PodsReadyProbe) else ()
        )
        self._cache: WatchCache | None = None
        self._starting = asyncio.Lock()
        self._namespace = ""

    async def _cache_or_start(self) -> WatchCache:
        """The shared cache, acquired by the first sample; samples started meanwhile wait for it."""
        async with self._starting:
            if self._cache is None:
                # Reading the kubeconfig (and writing its certificates to files) blocks: not on the loop.
                conn = await asyncio.to_thread(connect, self._kube)
                kind: Kind
                if isinstance(self._spec, WorkloadAvailableProbe):
                    kind = self._spec.kind
                else:
                    kind = "Pod" if isinstance(self._spec, PodsReadyProbe) else "Node"
                namespace = None if isinstance(self._spec, NodeReadyProbe) else self._spec.namespace
                self._namespace = namespace or conn.namespace
                self._cache = acquire(conn, kind, self._namespace)
            return self._cache

    async def observe(self) -> Observation:
        started = time.monotonic()
        cache = self._cache
        try:
            async with asyncio.timeout(self.timeout):
                if cache is None:
                    cache = await self._cache_or_start()
                await cache.wait_settled()
        except TimeoutError:
            if cache is None:
                return Observation(False, time.monotonic() - started, f"timeout after {self.timeout:g}s connecting")
        except DrillError as e:
            return Observation(False, time.monotonic() - started, str(e))
        snap = cache.snapshot()
        problem = cache.problem(snap, time.monotonic())
        why = problem if problem is not None else self._judge(snap.objects)
        return Observation(why is None, time.monotonic() - started, why)

    def _judge(self, objects: Mapping[str, Obj]) -> str | None:
        spec, namespace = self._spec, self._namespace
        if isinstance(spec, WorkloadAvailableProbe):
            return judge_workload(objects.get(spec.workload), spec.kind, f"{namespace}/{spec.workload}", spec.min)
        if isinstance(spec, PodsReadyProbe):
            return judge_pods(objects.values(), self._selector, spec.min, f"{spec.label_selector!r} in {namespace}")
        return judge_node(objects.get(spec.node), spec.node, spec.allow_unschedulable)

    async def close(self) -> None:
        cache, self._cache = self._cache, None
        if cache is not None:
            await release(cache)


def judge_workload(obj: Obj | None, kind: str, ref: str, minimum: int) -> str | None:
    """None when the Deployment/StatefulSet has at least `minimum` available replicas, else why not."""
    if obj is None:
        return f"{kind} {ref} not found"
    available = int((obj.get("status") or {}).get("availableReplicas") or 0)
    if available < minimum:
        return f"{kind} {ref}: {available} available replicas, need {minimum}"
    return None


def judge_pods(pods: Iterable[Obj], selector: tuple[Requirement, ...], minimum: int, what: str) -> str | None:
    """None when at least `minimum` pods matching `selector` are Ready and not being deleted."""
    matching = [p for p in pods if labels_match((p.get("metadata") or {}).get("labels") or {}, selector)]
    ready = sum(1 for p in matching if pod_ready(p))
    if ready < minimum:
        return f"{ready} of {len(matching)} pods matching {what} Ready, need {minimum}"
    return None


def judge_node(node: Obj | None, name: str, allow_unschedulable: bool) -> str | None:
    """None when the node's Ready condition is True (and, unless allowed, it is not cordoned)."""
    if node is None:
        return f"node {name} not found"
    ready = _condition(node, "Ready")
    if ready is None or ready.get("status") != "True":
        status = ready.get("status", "Unknown") if ready else "Unknown"
        detail = f" ({ready.get('reason')}: {ready.get('message')})" if ready and ready.get("reason") else ""
        return f"node {name} is not Ready: Ready={status}{detail}"
    if not allow_unschedulable and (node.get("spec") or {}).get("unschedulable"):
        return f"node {name} is cordoned (unschedulable)"
    return None


def pod_ready(pod: Obj) -> bool:
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    ready = _condition(pod, "Ready")
    return ready is not None and ready.get("status") == "True"


def labels_match(labels: Mapping[str, str], selector: tuple[Requirement, ...]) -> bool:
    """kubectl's semantics: every requirement holds; `!=` and `notin` also match a missing label."""
    for key, op, values in selector:
        present = key in labels
        if op == "exists" and not present:
            return False
        if op == "!" and present:
            return False
        if op in ("=", "in") and (not present or labels[key] not in values):
            return False
        if op in ("!=", "notin") and present and labels[key] in values:
            return False
    return True


def _condition(obj: Obj, kind: str) -> Mapping[str, Any] | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return condition  # type: ignore[no-any-return]
    return None
