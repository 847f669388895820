"""Environment variables of a Deployment's or StatefulSet's pod template, changed and put back.

Workload clock skew sets libfaketime's variables this way (a rolling restart each time). A change
is a list of containers, each with its env list as the API server stored it (`env`, None when
absent), the list to write (`injected`) and the variables drillctl sets (`set`). Restoring needs
only `env` and `set`, which the undo record and the workload's own mark both hold, so a run's
revert and `drillctl recover --cluster` restore alike.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from kubernetes import client

from orchestrator.errors import FaultError
from orchestrator.kube.access import KubeApiError, KubeConnection
from orchestrator.kube.marks import Mark, annotation_ops, unmark
from orchestrator.kube.objects import json_patch, read_object, same_uid

PATCH_ATTEMPTS = 5


def resource(kind: str) -> str:
    """The RBAC resource of a workload kind (group `apps`)."""
    return "deployments" if kind == "Deployment" else "statefulsets"


def reader(conn: KubeConnection, kind: str) -> Callable[..., Any]:
    apps = client.AppsV1Api(conn.api)
    return apps.read_namespaced_deployment if kind == "Deployment" else apps.read_namespaced_stateful_set


def patcher(conn: KubeConnection, kind: str) -> Callable[..., Any]:
    apps = client.AppsV1Api(conn.api)
    return apps.patch_namespaced_deployment if kind == "Deployment" else apps.patch_namespaced_stateful_set


async def read_workload(conn: KubeConnection, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    return await read_object(conn, reader(conn, kind), name, namespace)


async def apply_env(
    conn: KubeConnection,
    kind: str,
    namespace: str,
    name: str,
    uid: str,
    changes: Sequence[Mapping[str, Any]],
    mark: Mark,
) -> None:
    """Write each container's `injected` env and the mark, only if the template is still as recorded."""
    what = f"{kind} {namespace}/{name}"
    found = await read_workload(conn, kind, namespace, name)
    if found is None or found["metadata"]["uid"] != uid:
        raise FaultError(f"{what} is gone")
    ops: list[dict[str, Any]] = [same_uid(uid)]
    for change in changes:
        base = f"/spec/template/spec/containers/{change['index']}"
        ops.append({"op": "test", "path": f"{base}/name", "value": change["name"]})
        if change["env"] is None:
            ops.append({"op": "add", "path": f"{base}/env", "value": change["injected"]})
        else:
            ops.append({"op": "test", "path": f"{base}/env", "value": change["env"]})
            ops.append({"op": "replace", "path": f"{base}/env", "value": change["injected"]})
    ops += annotation_ops(found["metadata"].get("annotations"), mark.annotations())
    try:
        await json_patch(conn, patcher(conn, kind), name, namespace, ops)
    except KubeApiError as e:
        if e.status == 422:
            raise FaultError(f"{what} changed since prepare; nothing patched") from e
        raise


@dataclass(frozen=True)
class Restored:
    outcome: Literal["vanished", "unchanged", "restored"]
    conflicts: list[str]
    """Variables someone else changed meanwhile, left as they are."""

    def note(self, what: str) -> str:
        head = {
            "vanished": f"{what} vanished meanwhile: nothing to restore",
            "unchanged": f"{what}: nothing left to restore",
            "restored": f"{what} restored: pod template env and marks",
        }[self.outcome]
        return head + "".join(f"; {c}" for c in self.conflicts)


async def restore_env(
    conn: KubeConnection,
    kind: str,
    namespace: str,
    name: str,
    uid: str,
    changes: Sequence[Mapping[str, Any]],
    marks_before: Mapping[str, str | None],
    run_id: str,
) -> Restored:
    """Put back the recorded env lists and drillctl's annotations; idempotent. A workload that was replaced
    (another uid) or deleted meanwhile is `vanished`; a concurrent change is retried."""
    for _ in range(PATCH_ATTEMPTS):
        found = await read_workload(conn, kind, namespace, name)
        if found is None or found["metadata"]["uid"] != uid:
            return Restored("vanished", [])
        ops, conflicts = restore_ops(found, changes, marks_before, run_id)
        if not ops:
            return Restored("unchanged", conflicts)
        version = {"op": "test", "path": "/metadata/resourceVersion", "value": found["metadata"]["resourceVersion"]}
        try:
            await json_patch(conn, patcher(conn, kind), name, namespace, [version, *ops])
        except KubeApiError as e:
            if e.status in (409, 422):
                continue
            if e.status == 404:
                return Restored("vanished", [])
            raise
        return Restored("restored", conflicts)
    raise FaultError(f"{kind} {namespace}/{name} kept changing under {PATCH_ATTEMPTS} attempts")


def restore_ops(
    workload: Mapping[str, Any],
    changes: Sequence[Mapping[str, Any]],
    marks_before: Mapping[str, str | None],
    run_id: str,
) -> tuple[list[dict[str, Any]], list[str]]:
    """JSON-patch operations that undo `changes` on `workload` as it is now, and the conflicts found.

    If every variable still holds what drillctl set and nothing else changed, the recorded env list
    comes back exactly. Otherwise each variable still holding drillctl's value goes back to its
    recorded entry (or away); one holding something else is left alone and reported.
    """
    containers: Sequence[Mapping[str, Any]] = workload["spec"]["template"]["spec"]["containers"]
    ops: list[dict[str, Any]] = []
    conflicts: list[str] = []
    for change in changes:
        index = next((i for i, c in enumerate(containers) if c["name"] == change["name"]), None)
        if index is None:
            conflicts.append(f"container {change['name']} is gone")
            continue
        current: list[dict[str, Any]] | None = containers[index].get("env")
        restored, notes = _restored_env(current, change["env"], change["set"])
        conflicts += [f"container {change['name']}: {note}" for note in notes]
        if restored == current:
            continue
        base = f"/spec/template/spec/containers/{index}"
        ops.append({"op": "test", "path": f"{base}/name", "value": change["name"]})
        if restored is None:
            ops.append({"op": "remove", "path": f"{base}/env"})
        else:
            ops.append({"op": "add" if current is None else "replace", "path": f"{base}/env", "value": restored})
    ops += unmark(workload, marks_before, run_id)
    return ops, conflicts


def _restored_env(
    current: list[dict[str, Any]] | None, original: list[dict[str, Any]] | None, ours: Mapping[str, str]
) -> tuple[list[dict[str, Any]] | None, list[str]]:
    def without(env: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        return [e for e in env or [] if e["name"] not in ours]

    def holds_ours(env: list[dict[str, Any]] | None) -> bool:
        found = {e["name"]: e for e in env or []}
        return all(found.get(k) == {"name": k, "value": v} for k, v in ours.items())

    if holds_ours(current) and without(current) == without(original):
        return (copy.deepcopy(original), [])
    before = {e["name"]: e for e in original or []}
    notes = []
    restored: list[dict[str, Any]] = []
    for entry in current or []:
        key = entry["name"]
        if key not in ours:
            restored.append(entry)
        elif entry == {"name": key, "value": ours[key]}:
            if key in before:
                restored.append(before[key])
        else:
            if entry != before.get(key):
                notes.append(f"{key} was changed meanwhile to {json.dumps(entry.get('value', entry))}; left as is")
            restored.append(entry)
    if current is None or (not restored and original is None):
        return None, notes
    return restored, notes


def mark_prior(changes: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What the workload's mark records: each changed container's env before and the values drillctl set."""
    return {"env": {c["name"]: c["env"] for c in changes}, "set": {c["name"]: c["set"] for c in changes}}


def changes_from_mark(prior: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The changes a mark records (`mark_prior`), or None when it does not hold what restoring needs."""
    env, values = prior.get("env"), prior.get("set")
    if not isinstance(env, dict) or not isinstance(values, dict) or set(env) != set(values):
        return None
    return [{"name": name, "env": env[name], "set": values[name]} for name in env]
