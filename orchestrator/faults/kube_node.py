"""node.loss on Kubernetes nodes: crash (cordon + drillctl's NoExecute taint, so the taint manager
evicts every pod at once, as when a node dies), drain (cordon + the Eviction API, honouring
PodDisruptionBudgets) or delete (the Node object; recreated from its recorded manifest on revert).

Targets are chosen in `prepare` with the drill's seed, and the undo record holds the seed, the chosen
nodes, each node's prior state (and manifest) and the kubeconfig and context: revert needs nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestrator.errors import PreflightError
from orchestrator.faults.base import Touched
from orchestrator.kube import nodes
from orchestrator.kube.access import KubeConnection, reconnect, recorded
from orchestrator.kube.driver import KubeDriver
from orchestrator.kube.marks import (
    Mark,
    annotations_of,
    expiry,
    node_manifest,
    node_prior,
    pod_ref,
    split_step,
)
from orchestrator.kube.plan import FaultPlan
from orchestrator.kube.safety import allowed_namespaces, namespace_refusal, node_loss_permissions
from orchestrator.kube.selection import Chosen, describe_selection
from orchestrator.model.spec import NodeLossFault
from orchestrator.model.undo import Undo

MODE_EFFECT = {
    "crash": "cordon + NoExecute taint drillctl.io/node-loss",
    "drain": "cordon + evictions through the Eviction API",
    "delete": "delete the Node object (recreated on revert)",
}


@dataclass(frozen=True)
class Resolution:
    conn: KubeConnection
    chosen: Chosen | None
    disrupted: dict[str, list[str]]
    """Per chosen node, the pods (namespace/name) its loss disrupts, DaemonSet and mirror pods aside."""
    refusals: list[str]


class KubeNodeLossDriver(KubeDriver[Resolution]):
    name = "node.loss@kubernetes"

    async def prepare(self, spec: NodeLossFault, step_id: str) -> Undo:
        resolution = await self._resolved(spec)
        conn, chosen = resolution.conn, resolution.chosen
        assert chosen is not None
        run_id, fault = split_step(step_id)
        records = []
        for name in chosen.names:
            node = await nodes.read_node(conn, name)
            if node is None:
                raise PreflightError(f"fault {spec.name}: node {name} vanished while preparing")
            record: dict[str, Any] = {
                "name": name,
                "uid": node["metadata"]["uid"],
                "prior": node_prior(node),
                "pods": resolution.disrupted.get(name, []),
            }
            if spec.mode == "delete":
                record["manifest"] = node_manifest(node)
                record["tombstone"] = [conn.namespace, nodes.tombstone_name(step_id, name)]
            records.append(record)
        life = spec.duration if spec.restore else max(spec.duration, self._access.horizon)
        expires = expiry(life)
        return Undo(
            driver=self.name,
            step_id=step_id,
            state={
                **recorded(conn),
                "run_id": run_id,
                "fault": fault,
                "mode": spec.mode,
                "seed": chosen.seed,
                "chosen": list(chosen.names),
                "matched": chosen.matched,
                "allowed_namespaces": list(allowed_namespaces(self._access.limits, conn.namespace)),
                "drain_timeout": spec.drain_timeout,
                "expires_at": expires.isoformat(timespec="seconds"),
                "nodes": records,
            },
        )

    async def inject(self, spec: NodeLossFault, undo: Undo) -> None:
        state = undo.state
        conn = reconnect(state)
        expires = datetime.fromisoformat(state["expires_at"])
        for record in state["nodes"]:
            mark = Mark(state["run_id"], state["fault"], expires, record["prior"])
            if state["mode"] == "delete":
                tombstone = (record["tombstone"][0], record["tombstone"][1])
                await nodes.delete_node(conn, record["name"], record["uid"], record["manifest"], tombstone, mark)
                continue
            await nodes.mark_lost(conn, record["name"], record["uid"], state["mode"] == "crash", mark)
            if state["mode"] == "drain":
                evicted = await nodes.drain(conn, record["name"], state["allowed_namespaces"], state["drain_timeout"])
                self._log.info("kube_node_drained", node=record["name"], evicted=evicted)

    async def revert(self, undo: Undo) -> list[str]:
        """Idempotent; a node that changed or vanished meanwhile is noted as found (log and report), never an error."""
        state = undo.state
        conn = reconnect(state)
        notes = []
        for record in state["nodes"]:
            if state["mode"] == "delete":
                tombstone = (record["tombstone"][0], record["tombstone"][1])
                note = await nodes.recreate_node(conn, record["manifest"], record["uid"], tombstone)
            else:
                note = await nodes.restore_node(conn, record["name"], record["uid"], record["prior"], state["run_id"])
            self._log.info("kube_node_reverted", step=undo.step_id, node=record["name"], note=note)
            notes.append(note)
        return notes

    def touched(self, undo: Undo) -> Touched:
        """The chosen nodes (and, for `delete`, the ConfigMaps that keep their manifests), and the seed."""
        records = undo.state["nodes"]
        targets = [f"node/{r['name']}" for r in records]
        targets += [f"configmap/{r['tombstone'][0]}/{r['tombstone'][1]}" for r in records if "tombstone" in r]
        return Touched(tuple(targets), undo.state["seed"])

    def describe(self, spec: NodeLossFault) -> str:
        assert spec.nodes is not None
        return f"Kubernetes nodes ({describe_selection(spec.nodes)}): {MODE_EFFECT[spec.mode]}"

    async def plan(self, spec: NodeLossFault) -> FaultPlan:
        resolution = await self._resolve(spec)
        conn, chosen = resolution.conn, resolution.chosen
        names = chosen.names if chosen else ()
        return FaultPlan(
            fault=spec.name,
            context=conn.context,
            namespace=conn.namespace,
            seed=self._seed,
            touches=tuple(f"node {n} ({MODE_EFFECT[spec.mode]})" for n in names)
            + ((f"({len(names)} of {chosen.matched} matching nodes)",) if chosen else ()),
            effects=tuple(f"disrupts pod {p} (on node {n})" for n in names for p in resolution.disrupted.get(n, [])),
            refusals=tuple(resolution.refusals),
        )

    async def _resolve(self, spec: NodeLossFault) -> Resolution:
        """Read-only: the connection, the seeded choice, and every safety rule that refuses it."""
        assert spec.nodes is not None
        conn, refusals = self._connect()
        limits = self._limits
        allowed = allowed_namespaces(limits, conn.namespace)
        needed = node_loss_permissions(spec.mode, allowed, conn.namespace)
        chosen, more = await self._choose_nodes(conn, spec.name, spec.nodes, needed)
        refusals += more
        if chosen is None:
            return Resolution(conn, None, {}, refusals)
        disrupted: dict[str, list[str]] = {}
        for name in chosen.names:
            node = await nodes.read_node(conn, name)
            mark = Mark.read(annotations_of(node)) if node is not None else None
            if mark is not None:
                refusals.append(
                    f"node {name} still carries fault {mark.fault} of run {mark.run_id}: "
                    f"run `drillctl recover --cluster` first"
                )
            pods = await nodes.disrupted_pods(conn, name)
            disrupted[name] = [pod_ref(p) for p in pods]
            namespaces = {p["metadata"]["namespace"] for p in pods}
            outside = sorted(ns for ns in namespaces if namespace_refusal(ns, limits, conn.namespace))
            if outside:
                refusals.append(
                    f"node {name} carries pods of namespaces that the drill may not touch ({', '.join(outside)}; "
                    f"allowed: {', '.join(allowed)})"
                )
        return Resolution(conn, chosen, disrupted, refusals)
