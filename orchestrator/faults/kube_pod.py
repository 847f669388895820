"""pod.kill: delete chosen pods with a grace period (0 kills at once).

There is nothing to restore (the pods' owners recreate them), so revert only records that; the undo
record still holds the seed and the exact pods (with their uids) for the journal and the report.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubernetes import client

from orchestrator.faults.base import Touched
from orchestrator.kube.access import KubeApiError, KubeConnection, reconnect, recorded
from orchestrator.kube.driver import KubeDriver
from orchestrator.kube.plan import FaultPlan
from orchestrator.kube.safety import pod_kill_permissions
from orchestrator.kube.selection import Chosen, describe_selection
from orchestrator.model.spec import PodKillFault
from orchestrator.model.undo import Undo


@dataclass(frozen=True)
class Resolution:
    conn: KubeConnection
    namespace: str
    chosen: Chosen | None
    refusals: list[str]


class KubePodKillDriver(KubeDriver[Resolution]):
    name = "pod.kill@kubernetes"

    async def prepare(self, spec: PodKillFault, step_id: str) -> Undo:
        resolution = await self._resolved(spec)
        conn, chosen, namespace = resolution.conn, resolution.chosen, resolution.namespace
        assert chosen is not None
        core = client.CoreV1Api(conn.api)
        pods = []
        for name in chosen.names:
            try:
                pod = await conn.call_json(core.read_namespaced_pod, name, namespace)
            except KubeApiError as e:
                if e.status == 404:
                    continue  # gone since the listing: nothing to kill
                raise
            pods.append({"name": name, "uid": pod["metadata"]["uid"], "node": pod.get("spec", {}).get("nodeName")})
        return Undo(
            driver=self.name,
            step_id=step_id,
            state={
                **recorded(conn),
                "pod_namespace": namespace,
                "seed": chosen.seed,
                "chosen": list(chosen.names),
                "matched": chosen.matched,
                "grace_period": spec.grace_period,
                "pods": pods,
            },
        )

    async def inject(self, spec: PodKillFault, undo: Undo) -> None:
        state = undo.state
        conn = reconnect(state)
        core = client.CoreV1Api(conn.api)
        grace = None if state["grace_period"] is None else round(state["grace_period"])
        for pod in state["pods"]:
            options = client.V1DeleteOptions(
                grace_period_seconds=grace, preconditions=client.V1Preconditions(uid=pod["uid"])
            )
            try:
                await conn.call(core.delete_namespaced_pod, pod["name"], state["pod_namespace"], body=options)
            except KubeApiError as e:
                if e.status not in (404, 409):  # gone already, or replaced by a pod of the same name
                    raise
                self._log.info("kube_pod_already_gone", pod=pod["name"], status=e.status)

    async def revert(self, undo: Undo) -> None:
        """Nothing to restore: the pods' owners (ReplicaSet, StatefulSet...) recreate them."""
        self._log.info(
            "kube_pod_kill_reverted", step=undo.step_id, note="nothing to restore", pods=undo.state["chosen"]
        )

    def touched(self, undo: Undo) -> Touched:
        """The pods deleted (those still there when prepared), and the seed that chose them."""
        namespace = undo.state["pod_namespace"]
        return Touched(tuple(f"pod/{namespace}/{p['name']}" for p in undo.state["pods"]), undo.state["seed"])

    def describe(self, spec: PodKillFault) -> str:
        grace = "each pod's own grace period" if spec.grace_period is None else f"grace period {spec.grace_period:g}s"
        where = f" in namespace {spec.pods.namespace}" if spec.pods.namespace else ""
        return f"delete Kubernetes pods{where} ({describe_selection(spec.pods)}), {grace}"

    async def plan(self, spec: PodKillFault) -> FaultPlan:
        resolution = await self._resolve(spec)
        chosen = resolution.chosen
        names = chosen.names if chosen else ()
        grace = "own grace period" if spec.grace_period is None else f"grace period {spec.grace_period:g}s"
        return FaultPlan(
            fault=spec.name,
            context=resolution.conn.context,
            namespace=resolution.namespace,
            seed=self._seed,
            touches=tuple(f"pod {resolution.namespace}/{n} (deleted, {grace})" for n in names)
            + ((f"({len(names)} of {chosen.matched} matching pods)",) if chosen else ()),
            refusals=tuple(resolution.refusals),
        )

    async def _resolve(self, spec: PodKillFault) -> Resolution:
        """Read-only: the connection, the seeded choice, and every safety rule that refuses it."""
        conn, refusals = self._connect()
        namespace, chosen, more = await self._choose_pods(conn, spec.name, spec.pods, pod_kill_permissions)
        return Resolution(conn, namespace, chosen, refusals + more)
