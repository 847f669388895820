"""Leftovers of dead runs, found in the cluster itself (`drillctl recover --cluster`).

Journals can be lost with the host that ran the drill; the marks drillctl writes on every object it
changes or creates cannot. Every marked object belongs to a run, and is restored when that run is
dead (its journal under the runs folder is not held by a live drillctl) or its expiry time has
passed. A run whose journal is not here may be running on another machine: its marks are left
alone until they expire. What restoring means depends on the object:

- a Node (node.loss crash or drain): uncordoned if drillctl cordoned it, drillctl's taint removed;
- a tombstone ConfigMap (node.loss delete): the Node recreated from the manifest it holds;
- a Deployment or StatefulSet (workload clock skew): the pod template's env put back from the mark;
- a helper pod (label `app.kubernetes.io/managed-by=drillctl`, e.g. a node clock helper): deleted,
  which makes it undo its change (the clock helper steps the clock back on SIGTERM);
- any other marked pod (gc.pause, memory.pressure): its ephemeral loop ended by exec where possible
  (else it ends by its own deadline) and the marks removed.

A restore that fails is reported for that object (`failed`), and the others still go ahead.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from kubernetes import client

from orchestrator.errors import BackendError, FaultError
from orchestrator.journal import is_held
from orchestrator.kube import nodes, workloads
from orchestrator.kube.access import KubeConnection
from orchestrator.kube.clock_helper import GONE_TIMEOUT
from orchestrator.kube.ephemeral import stop_loop
from orchestrator.kube.marks import LEFTOVER_LABEL, MANAGED_BY, TOMBSTONE_KEY, Mark, annotations_of, unmark
from orchestrator.kube.objects import delete_pods, patch_pod

JOURNAL = "journal.jsonl"


@dataclass(frozen=True)
class Leftover:
    kind: str
    name: str
    run_id: str
    fault: str
    expires_at: datetime
    verdict: str
    """Why it was restored or left alone."""
    action: str
    """What was found and done."""
    failed: bool = False
    """The restore was tried and failed (`action` says why)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "run_id": self.run_id,
            "fault": self.fault,
            "expires_at": self.expires_at.isoformat(),
            "verdict": self.verdict,
            "action": self.action,
            "failed": self.failed,
        }


def run_state(run_id: str, runs_dir: Path, mark: Mark, now: datetime) -> tuple[bool, str]:
    """(restore?, why) for a mark, from its run's journal and its expiry."""
    journal = runs_dir / run_id / JOURNAL
    if mark.expired(now):
        return True, f"expired at {mark.expires_at.isoformat()}"
    if not journal.exists():
        return False, f"run {run_id} is not under {runs_dir} and its mark expires at {mark.expires_at.isoformat()}"
    if is_held(journal):
        return False, f"run {run_id} is still live"
    return True, f"run {run_id} is dead (its journal is not held)"


async def recover_cluster(conn: KubeConnection, runs_dir: Path, now: datetime) -> list[Leftover]:
    """Find every drillctl mark in the cluster and restore those of dead or expired runs; idempotent."""
    core = client.CoreV1Api(conn.api)
    apps = client.AppsV1Api(conn.api)
    found: list[Leftover] = []

    async def settle(kind: str, where: str, mark: Mark, restore: Callable[..., Awaitable[str]], *args: Any) -> None:
        """Restore with `restore(conn, *args)` if the mark's run is dead or expired; record what happened."""
        due, why = run_state(mark.run_id, runs_dir, mark, now)
        action, failed = "left alone", False
        if due:
            try:
                action = await restore(conn, *args)
            except (BackendError, FaultError) as e:
                action, failed = f"restore failed: {e}", True
        found.append(Leftover(kind, where, mark.run_id, mark.fault, mark.expires_at, why, action, failed))

    for mark, node in await _marked(conn, core.list_node):
        await settle("Node", node["metadata"]["name"], mark, _restore_node, node, mark)
    for mark, cm in await _marked(conn, core.list_config_map_for_all_namespaces, label_selector=LEFTOVER_LABEL):
        await settle("ConfigMap (deleted node)", _ref(cm), mark, _recreate_node, cm)
    for kind, lister in (
        ("Deployment", apps.list_deployment_for_all_namespaces),
        ("StatefulSet", apps.list_stateful_set_for_all_namespaces),
    ):
        for mark, workload in await _marked(conn, lister):
            await settle(kind, _ref(workload), mark, _restore_env, kind, workload, mark)
    for mark, pod in await _marked(conn, core.list_pod_for_all_namespaces):
        if (pod["metadata"].get("labels") or {}).get(MANAGED_BY) == "drillctl":
            await settle("Pod (drillctl helper)", _ref(pod), mark, _delete_helper, pod)
        else:
            await settle("Pod", _ref(pod), mark, _end_loop, pod, mark)
    return found


async def _marked(conn: KubeConnection, lister: Callable[..., Any], **selectors: str) -> list[tuple[Mark, Any]]:
    """The listed objects that carry a readable drillctl mark, with it."""
    listed = await conn.call_json(lister, **selectors)
    marked = ((Mark.read(annotations_of(obj)), obj) for obj in listed.get("items", []))
    return [(mark, obj) for mark, obj in marked if mark is not None]


def _ref(obj: dict[str, Any]) -> str:
    return f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"


async def _restore_node(conn: KubeConnection, node: dict[str, Any], mark: Mark) -> str:
    meta = node["metadata"]
    return await nodes.restore_node(conn, meta["name"], meta["uid"], mark.prior, mark.run_id)


async def _recreate_node(conn: KubeConnection, cm: dict[str, Any]) -> str:
    try:
        manifest = json.loads(cm.get("data", {})[TOMBSTONE_KEY])
    except (KeyError, ValueError) as e:
        return f"unreadable node manifest ({e}): left alone"
    return await nodes.recreate_node(conn, manifest, "", (cm["metadata"]["namespace"], cm["metadata"]["name"]))


async def _restore_env(conn: KubeConnection, kind: str, workload: dict[str, Any], mark: Mark) -> str:
    """Workload clock skew: the env the mark records goes back, unless someone changed it meanwhile."""
    meta = workload["metadata"]
    what = f"{kind} {_ref(workload)}"
    changes = workloads.changes_from_mark(mark.prior)
    if changes is None:
        return f"{what}: its mark does not record the env drillctl changed: left alone"
    restored = await workloads.restore_env(
        conn, kind, meta["namespace"], meta["name"], meta["uid"], changes, {}, mark.run_id
    )
    return restored.note(what)


async def _delete_helper(conn: KubeConnection, pod: dict[str, Any]) -> str:
    """A pod drillctl created: deleting it makes it undo its change (the clock helper's TERM trap)."""
    await delete_pods(conn, pod["metadata"]["namespace"], [pod["metadata"]["name"]], GONE_TIMEOUT)
    return f"helper pod {_ref(pod)} deleted and gone"


async def _end_loop(conn: KubeConnection, pod: dict[str, Any], mark: Mark) -> str:
    """A pod carrying an ephemeral loop of gc.pause or memory.pressure: end the loop, then drop the marks."""
    meta = pod["metadata"]
    done = []
    loop = mark.prior.get("ephemeral")
    if isinstance(loop, str):
        outcome = await stop_loop(conn, pod, loop, f"it ends by itself by {mark.expires_at.isoformat()}")
        done.append(f"loop {loop}: {outcome}")
    if ops := unmark(pod, {}, mark.run_id):
        await patch_pod(conn, meta["namespace"], meta["name"], meta["uid"], ops)
        done.append("marks removed")
    return f"pod {_ref(pod)}: {', '.join(done) or 'nothing left to restore'}"
