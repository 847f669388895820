"""Node loss against the API server: cordon and taint, drain through the Eviction API, delete and recreate.

Every write carries the resourceVersion (or the uid) it was computed from, so a concurrent change
is a conflict to retry, never a silent overwrite. Restores say what they found (a note), because an
object that changed or vanished in the meantime is something to report, not to crash on.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Collection, Mapping
from typing import Any

from kubernetes import client

from orchestrator.errors import BackendError, FaultError
from orchestrator.kube.access import KubeApiError, KubeConnection, status_of
from orchestrator.kube.marks import (
    LEFTOVER_LABEL,
    TOMBSTONE_KEY,
    Mark,
    annotations_of,
    evictable,
    loss_patch,
    pod_ref,
    restore_patch,
)
from orchestrator.kube.objects import MERGE_PATCH, read_object

CONFLICT_RETRIES = 5
EVICTION_BACKOFF_MAX = 2.0


async def read_node(conn: KubeConnection, name: str) -> dict[str, Any] | None:
    return await read_object(conn, client.CoreV1Api(conn.api).read_node, name)


async def pods_on(conn: KubeConnection, node: str) -> list[dict[str, Any]]:
    """Every pod bound to `node`, in every namespace (terminating ones included)."""
    core = client.CoreV1Api(conn.api)
    listed = await conn.call_json(core.list_pod_for_all_namespaces, field_selector=f"spec.nodeName={node}")
    return list(listed.get("items", []))


async def disrupted_pods(conn: KubeConnection, node: str) -> list[dict[str, Any]]:
    """The pods a loss of `node` disrupts that are not the node's own (DaemonSet, mirror): what the allowlist covers."""
    return [p for p in await pods_on(conn, node) if evictable(p) and not p["metadata"].get("deletionTimestamp")]


async def mark_lost(conn: KubeConnection, name: str, uid: str, taint: bool, mark: Mark) -> None:
    """Cordon (and taint) the node and mark it, retrying on conflicts with the node's own controllers."""
    core = client.CoreV1Api(conn.api)
    for _ in range(CONFLICT_RETRIES):
        node = await read_node(conn, name)
        if node is None:
            raise FaultError(f"node {name} vanished before the fault")
        if node["metadata"]["uid"] != uid:
            raise FaultError(f"node {name} was replaced since prepare (uid {uid} -> {node['metadata']['uid']})")
        try:
            await conn.call(core.patch_node, name, loss_patch(node, taint, mark), _content_type=MERGE_PATCH)
            return
        except KubeApiError as e:
            if e.status != 409:
                raise
    raise BackendError(f"node {name}: {CONFLICT_RETRIES} conflicting updates in a row")


async def restore_node(conn: KubeConnection, name: str, uid: str, prior: Mapping[str, Any], run_id: str) -> str:
    """Undo `mark_lost`; idempotent. Returns what was found and done."""
    core = client.CoreV1Api(conn.api)
    for _ in range(CONFLICT_RETRIES):
        node = await read_node(conn, name)
        if node is None:
            return f"node {name} vanished meanwhile: nothing to restore"
        mark = Mark.read(annotations_of(node))
        if mark is not None and mark.run_id != run_id:
            return f"node {name} carries a fault of another run ({mark.run_id}): left alone"
        patch = restore_patch(node, prior)
        replaced = "" if node["metadata"]["uid"] == uid else f" (replaced meanwhile: uid {node['metadata']['uid']})"
        if patch is None:
            return f"node {name}: nothing left to restore{replaced}"
        try:
            await conn.call(core.patch_node, name, patch, _content_type=MERGE_PATCH)
        except KubeApiError as e:
            if e.status != 409:
                raise
            continue
        spec = patch.get("spec", {})
        done = [
            "uncordoned" if "unschedulable" in spec else "",
            "drillctl's taint removed" if "taints" in spec else "",
            "marks removed" if patch["metadata"]["annotations"] else "",
        ]
        return f"node {name} restored: {', '.join(d for d in done if d)}{replaced}"
    raise BackendError(f"node {name}: {CONFLICT_RETRIES} conflicting updates in a row")


async def drain(conn: KubeConnection, node: str, namespaces: Collection[str], within: float) -> list[str]:
    """Evict every pod of the allowed namespaces from the node (DaemonSet and mirror pods stay, as with
    `kubectl drain`), honouring PodDisruptionBudgets: a 429 is retried with backoff for `within` seconds.

    Returns the pods evicted; raises FaultError naming those still there at the deadline.
    """
    core = client.CoreV1Api(conn.api)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    evicted: list[str] = []
    refused = 0
    delay = 0.1
    while True:
        pods = [p for p in await pods_on(conn, node) if evictable(p) and p["metadata"]["namespace"] in namespaces]
        if not pods:
            return evicted
        if loop.time() >= deadline:
            raise FaultError(
                f"drain of node {node} did not finish in {within:g}s ({refused} evictions refused by "
                f"PodDisruptionBudgets); still there: {', '.join(pod_ref(p) for p in pods)}"
            )
        for pod in pods:
            if pod["metadata"].get("deletionTimestamp"):
                continue  # evicted, terminating
            meta = pod["metadata"]
            body = client.V1Eviction(metadata=client.V1ObjectMeta(name=meta["name"], namespace=meta["namespace"]))
            try:
                await conn.call(core.create_namespaced_pod_eviction, meta["name"], meta["namespace"], body)
                evicted.append(pod_ref(pod))
            except KubeApiError as e:
                if e.status == 429:
                    refused += 1
                elif e.status != 404:
                    raise
        await asyncio.sleep(max(0.0, min(delay, deadline - loop.time())))
        delay = min(delay * 2, EVICTION_BACKOFF_MAX)


def tombstone_name(step_id: str, node: str) -> str:
    digest = hashlib.sha256(f"{step_id}/{node}".encode()).hexdigest()[:10]
    return f"drillctl-{digest}-{node}"[:253].rstrip("-.")


async def delete_node(
    conn: KubeConnection, name: str, uid: str, manifest: Mapping[str, Any], tombstone: tuple[str, str], mark: Mark
) -> None:
    """Keep the manifest in a marked ConfigMap (the cluster's own record of the leftover), then delete the Node."""
    core = client.CoreV1Api(conn.api)
    namespace, cm_name = tombstone
    body = client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=cm_name, labels={LEFTOVER_LABEL: "node"}, annotations=mark.annotations()),
        data={TOMBSTONE_KEY: json.dumps(manifest, sort_keys=True)},
    )
    try:
        await conn.call(core.create_namespaced_config_map, namespace, body)
    except KubeApiError as e:
        if e.status != 409:
            raise
    options = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid))
    try:
        await conn.call(core.delete_node, name, body=options)
    except KubeApiError as e:
        if e.status == 404:
            return
        if e.status == 409:
            raise FaultError(f"node {name} was replaced since prepare (uid is no longer {uid}): not deleted") from e
        raise


async def recreate_node(conn: KubeConnection, manifest: Mapping[str, Any], uid: str, tombstone: tuple[str, str]) -> str:
    """Undo `delete_node`; idempotent. A node of that name that exists again is left as it is."""
    core = client.CoreV1Api(conn.api)
    name = manifest["metadata"]["name"]
    existing = await read_node(conn, name)
    if existing is None:
        try:
            await conn.call(core.create_node, dict(manifest))
            note = f"node {name} recreated from its recorded manifest"
        except KubeApiError as e:
            if e.status != 409:
                raise
            note = f"node {name} was recreated by someone else meanwhile: left as it is"
    elif existing["metadata"]["uid"] == uid:
        note = f"node {name} was never deleted: nothing to recreate"
    else:
        note = f"node {name} exists again (recreated meanwhile, uid {existing['metadata']['uid']}): left as it is"
    await delete_tombstone(conn, tombstone)
    return note


async def delete_tombstone(conn: KubeConnection, tombstone: tuple[str, str]) -> None:
    core = client.CoreV1Api(conn.api)
    try:
        await conn.call(core.delete_namespaced_config_map, tombstone[1], tombstone[0])
    except BackendError as e:
        if status_of(e) != 404:
            raise
