"""What drillctl writes on the objects it changes, and the patches that change and restore them. Pure.

Each changed object carries the run id, the fault, an expiry time and its prior state, so the
leftovers of a dead run can be found and restored from the cluster alone (`drillctl recover
--cluster`), even without the journal. Objects are the API's own JSON (camelCase dicts).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

PREFIX = "drillctl.io/"
RUN_ID = PREFIX + "run-id"
FAULT = PREFIX + "fault"
EXPIRES_AT = PREFIX + "expires-at"
PRIOR_STATE = PREFIX + "prior-state"
TAINT_KEY = PREFIX + "node-loss"
"""drillctl's own NoExecute taint: no pod tolerates it, so the taint manager evicts them all at once."""
LEFTOVER_LABEL = PREFIX + "leftover"
"""Label of tombstone ConfigMaps (a deleted Node's manifest), selectable across namespaces."""
TOMBSTONE_KEY = "node.json"
MARK_KEYS = (RUN_ID, FAULT, EXPIRES_AT, PRIOR_STATE)
MANAGED_BY = "app.kubernetes.io/managed-by"
HELPER_LABELS = {MANAGED_BY: "drillctl"}
"""Label of every pod drillctl creates (clock helpers): `drillctl recover --cluster` deletes those of dead runs."""
EXPIRY_MARGIN = 60.0
"""Past a fault's longest life by this much, its marks count as expired (`drillctl recover --cluster`)."""

SERVER_SET = ("uid", "resourceVersion", "creationTimestamp", "managedFields", "generation", "selfLink")
SERVER_SET_TERMINATING = ("deletionTimestamp", "deletionGracePeriodSeconds")


@dataclass(frozen=True)
class Mark:
    run_id: str
    fault: str
    expires_at: datetime
    prior: Mapping[str, Any]

    def annotations(self) -> dict[str, str]:
        return {
            RUN_ID: self.run_id,
            FAULT: self.fault,
            EXPIRES_AT: self.expires_at.astimezone(UTC).isoformat(timespec="seconds"),
            PRIOR_STATE: json.dumps(dict(self.prior), sort_keys=True, separators=(",", ":")),
        }

    @classmethod
    def read(cls, annotations: Mapping[str, str] | None) -> Mark | None:
        """The mark on an object, or None when it has none (or an unreadable one, which is no mark of ours)."""
        a = annotations or {}
        if RUN_ID not in a:
            return None
        try:
            expires = datetime.fromisoformat(a[EXPIRES_AT])
            prior = json.loads(a.get(PRIOR_STATE, "{}"))
        except (KeyError, ValueError):
            return None
        if not isinstance(prior, dict):
            return None
        return cls(a[RUN_ID], a.get(FAULT, ""), expires, prior)

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at


def split_step(step_id: str) -> tuple[str, str]:
    """`<run id>/<fault name>` -> (run id, fault name)."""
    run_id, _, fault = step_id.rpartition("/")
    return run_id, fault


def expiry(life: float) -> datetime:
    """When the marks of a change that lives at most `life` seconds from now expire."""
    return datetime.now(UTC) + timedelta(seconds=life + EXPIRY_MARGIN)


def step_mark(step_id: str, life: float, prior: Mapping[str, Any]) -> Mark:
    """The mark of a step whose change lives at most `life` seconds from now."""
    run_id, fault = split_step(step_id)
    return Mark(run_id, fault, expiry(life), prior)


def object_name(prefix: str, step_id: str, suffix: str) -> str:
    """A DNS label unique to the step: `<prefix>-<hash of step id>-<suffix>`, at most 63 characters."""
    digest = hashlib.sha256(step_id.encode()).hexdigest()[:8]
    return f"{prefix}-{digest}-{suffix}"[:63].rstrip("-.")


def pointer(key: str) -> str:
    """A JSON-pointer token (RFC 6901) for an annotation key such as `drillctl.io/run-id`."""
    return key.replace("~", "~0").replace("/", "~1")


def annotation_ops(current: Mapping[str, str] | None, wanted: Mapping[str, str | None]) -> list[dict[str, Any]]:
    """JSON-patch operations that set (or, for None, remove) metadata annotations."""
    if current is None:
        values = {k: v for k, v in wanted.items() if v is not None}
        return [{"op": "add", "path": "/metadata/annotations", "value": values}] if values else []
    ops: list[dict[str, Any]] = []
    for key, value in wanted.items():
        path = f"/metadata/annotations/{pointer(key)}"
        if value is None:
            if key in current:
                ops.append({"op": "remove", "path": path})
        elif current.get(key) != value:
            ops.append({"op": "add", "path": path, "value": value})
    return ops


def marks_before(obj: Mapping[str, Any]) -> dict[str, str | None]:
    """drillctl's annotations on an object before a fault marks it (None: absent), for the undo record."""
    annotations = annotations_of(obj)
    return {k: annotations.get(k) for k in MARK_KEYS}


def unmark(obj: Mapping[str, Any], before: Mapping[str, str | None], run_id: str) -> list[dict[str, Any]]:
    """JSON-patch operations putting drillctl's annotations back as `before`, unless another run marked it since."""
    now = obj.get("metadata", {}).get("annotations")
    if (now or {}).get(RUN_ID) not in (None, run_id):
        return []
    return annotation_ops(now, {k: before.get(k) for k in MARK_KEYS})


def annotations_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict(obj.get("metadata", {}).get("annotations") or {})


def node_prior(node: Mapping[str, Any]) -> dict[str, Any]:
    """What node.loss changes on a node: whether it was cordoned, and its taints."""
    spec = node.get("spec", {})
    return {"unschedulable": bool(spec.get("unschedulable", False)), "taints": list(spec.get("taints") or [])}


def loss_patch(node: Mapping[str, Any], taint: bool, mark: Mark) -> dict[str, Any]:
    """JSON merge patch: cordon, drillctl's NoExecute taint if asked, the mark; fails on a concurrent change."""
    taints = [t for t in node.get("spec", {}).get("taints") or [] if t.get("key") != TAINT_KEY]
    spec: dict[str, Any] = {"unschedulable": True}
    if taint:
        spec["taints"] = [*taints, {"key": TAINT_KEY, "value": mark.fault[:63], "effect": "NoExecute"}]
    return {
        "metadata": {"resourceVersion": node["metadata"]["resourceVersion"], "annotations": mark.annotations()},
        "spec": spec,
    }


def restore_patch(node: Mapping[str, Any], prior: Mapping[str, Any]) -> dict[str, Any] | None:
    """JSON merge patch undoing node.loss: drillctl's taint and marks go; uncordon only if drillctl cordoned.

    None when there is nothing left to undo (idempotent revert).
    """
    spec_now = node.get("spec", {})
    taints = list(spec_now.get("taints") or [])
    kept = [t for t in taints if t.get("key") != TAINT_KEY]
    spec: dict[str, Any] = {}
    if len(kept) != len(taints):
        spec["taints"] = kept or None
    if spec_now.get("unschedulable") and not prior.get("unschedulable", False):
        spec["unschedulable"] = None
    ours = [k for k in annotations_of(node) if k.startswith(PREFIX)]
    if not spec and not ours:
        return None
    patch: dict[str, Any] = {
        "metadata": {"resourceVersion": node["metadata"]["resourceVersion"], "annotations": dict.fromkeys(ours)}
    }
    if spec:
        patch["spec"] = spec
    return patch


def node_manifest(node: Mapping[str, Any]) -> dict[str, Any]:
    """The Node as it can be created again: server-set fields and drillctl's marks removed, status kept to
    capacity and allocatable (the node agent, here KWOK, reports the rest)."""
    metadata = {k: v for k, v in node.get("metadata", {}).items() if k not in SERVER_SET + SERVER_SET_TERMINATING}
    annotations = {k: v for k, v in (metadata.get("annotations") or {}).items() if not k.startswith(PREFIX)}
    if annotations:
        metadata["annotations"] = annotations
    else:
        metadata.pop("annotations", None)
    status = node.get("status", {})
    manifest: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": metadata,
        "spec": dict(node.get("spec", {})),
    }
    kept = {k: status[k] for k in ("capacity", "allocatable") if k in status}
    if kept:
        manifest["status"] = kept
    return manifest


def evictable(pod: Mapping[str, Any]) -> bool:
    """What a drain evicts, like `kubectl drain`: not DaemonSet pods (the node's own), not mirror pods."""
    metadata = pod.get("metadata", {})
    if "kubernetes.io/config.mirror" in (metadata.get("annotations") or {}):
        return False
    return not any(o.get("kind") == "DaemonSet" for o in metadata.get("ownerReferences") or [])


def pod_ref(pod: Mapping[str, Any]) -> str:
    return f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
