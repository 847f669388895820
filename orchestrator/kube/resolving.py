"""The Kubernetes answers of target resolvers (`orchestrator/resolvers.py`): who holds a Lease now, which pods
match a label selector now. Read-only, one API call each, under the connection's request deadline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kubernetes import client

from orchestrator.errors import BackendError
from orchestrator.kube.access import KubeAccess, KubeApiError, connect


async def lease_holder(access: KubeAccess | None, name: str, namespace: str | None) -> str | None:
    """The Lease's holderIdentity; None when nobody holds it, or the holder stopped renewing it (expired)."""
    conn = connect(access or KubeAccess())
    coordination = client.CoordinationV1Api(conn.api)
    where = namespace or conn.namespace
    try:
        lease = await conn.call_json(coordination.read_namespaced_lease, name, where)
    except KubeApiError as e:
        raise BackendError(f"lease {where}/{name}: {e}") from e
    spec = lease.get("spec") or {}
    holder = spec.get("holderIdentity")
    renewed, duration = spec.get("renewTime"), spec.get("leaseDurationSeconds")
    if not isinstance(holder, str) or not holder:
        return None
    if isinstance(renewed, str) and isinstance(duration, int):
        renewed_at = datetime.fromisoformat(renewed.replace("Z", "+00:00"))
        if renewed_at + timedelta(seconds=duration) < datetime.now(UTC):
            return None
    return holder


async def matching_pods(access: KubeAccess | None, selector: str, namespace: str | None) -> list[str]:
    """Names of the pods that match and are not being deleted, sorted."""
    conn = connect(access or KubeAccess())
    core = client.CoreV1Api(conn.api)
    listed = await conn.call_json(core.list_namespaced_pod, namespace or conn.namespace, label_selector=selector)
    items = listed.get("items")
    if not isinstance(items, list):
        raise BackendError(f"pods matching {selector}: the answer holds no items")
    return sorted(
        str(pod["metadata"]["name"])
        for pod in items
        if isinstance(pod, dict) and not (pod.get("metadata") or {}).get("deletionTimestamp")
    )
