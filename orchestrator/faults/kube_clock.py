"""clock.skew on Kubernetes: a workload's pods under libfaketime, or a node's own clock.

`scope: workload` patches the pod template of a Deployment/StatefulSet whose image carries
libfaketime (LD_PRELOAD, FAKETIME): a rolling restart on inject and another on revert
(`kube/workloads.py`). The undo record, and the workload's mark, hold each changed container's env
list as the API server returned it, so revert puts back exactly that, or, when someone edited those
variables meanwhile, only the entries that still hold drillctl's values (and reports the rest).

`scope: node` (opt-in: `targets.kubernetes.allow_node_clock_change`) runs a privileged helper
pod pinned to each node (`kube/clock_helper.py`) that steps the node's wall clock by the offset
and steps it back on its own exit; revert deletes the helpers and waits until they are gone.

docs/faults/clock-skew.md has the details and limits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from orchestrator.errors import FaultError, PreflightError
from orchestrator.faults.base import Touched
from orchestrator.kube import workloads
from orchestrator.kube.access import KubeConnection, reconnect, recorded
from orchestrator.kube.clock_helper import GONE_TIMEOUT, HELPER_MARGIN, helper_pod
from orchestrator.kube.driver import KubeDriver
from orchestrator.kube.marks import marks_before, object_name, split_step, step_mark
from orchestrator.kube.objects import delete_pods
from orchestrator.kube.plan import FaultPlan
from orchestrator.kube.safety import Permission, namespace_refusal, permission_refusal
from orchestrator.model.durations import format_duration
from orchestrator.model.spec import ClockSkewFault
from orchestrator.model.undo import Undo
from orchestrator.targets.faketime import offset_line

DEFAULT_LIBRARY = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
"""Where Debian/Ubuntu's libfaketime package puts the library (amd64)."""
POD_VERBS = ("create", "delete", "get", "list", "watch")


@dataclass(frozen=True)
class Resolution:
    """What a clock skew would touch now, and every rule that refuses it (read-only)."""

    conn: KubeConnection
    refusals: list[str]
    nodes: tuple[str, ...] = ()
    matched: int = 0
    workload: dict[str, Any] | None = None


class KubeClockSkewDriver(KubeDriver[Resolution]):
    """`clock.skew@kubernetes`: scope workload (libfaketime in the pod template) or node (helper pods)."""

    name = "clock.skew@kubernetes"

    async def _resolve(self, spec: ClockSkewFault) -> Resolution:
        conn, refusals = self._connect()
        limits = self._limits
        if spec.scope == "node":
            if not limits.allow_node_clock_change:
                refusals.append(node_opt_in_message(spec.name))
            needed = [Permission("list", "nodes"), *(Permission(v, "pods", conn.namespace) for v in POD_VERBS)]
            chosen, more = await self._choose_nodes(conn, spec.name, _nodes(spec), needed)
            if chosen is None:
                return Resolution(conn, refusals + more)
            return Resolution(conn, refusals + more, chosen.names, chosen.matched)
        ref = _workload(spec)
        namespace = ref.namespace or conn.namespace
        if refusal := namespace_refusal(namespace, limits, conn.namespace):
            return Resolution(conn, [*refusals, refusal])
        needed = [Permission(v, workloads.resource(ref.kind), namespace, group="apps") for v in ("get", "patch")]
        if refusal := await permission_refusal(conn, needed):
            return Resolution(conn, [*refusals, refusal])
        found = await workloads.read_workload(conn, ref.kind, namespace, ref.name)
        if found is None:
            return Resolution(conn, [*refusals, f"clock.skew {spec.name}: {ref.kind} {namespace}/{ref.name} not found"])
        try:
            planned_env(spec, found)
        except PreflightError as e:
            refusals.append(str(e))
        return Resolution(conn, refusals, workload=found)

    async def plan(self, spec: ClockSkewFault) -> FaultPlan:
        """For `drillctl plan`: the nodes or the workload, and that a workload skew is a rolling restart."""
        resolution = await self._resolve(spec)
        conn = resolution.conn
        if spec.scope == "node":
            touches = tuple(f"node {n} (wall clock stepped by a privileged helper pod)" for n in resolution.nodes)
            if resolution.nodes:
                touches += (f"({len(resolution.nodes)} of {resolution.matched} matching nodes)",)
            effects: tuple[str, ...] = ()
        else:
            ref = _workload(spec)
            touches = (f"{ref.kind} {ref.namespace or conn.namespace}/{ref.name} (pod template env: libfaketime)",)
            effects = ("a rolling restart of its pods on inject, and another on revert",)
        return FaultPlan(
            spec.name, conn.context, conn.namespace, self._seed, touches, effects, tuple(resolution.refusals)
        )

    async def prepare(self, spec: ClockSkewFault, step_id: str) -> Undo:
        resolution = await self._resolved(spec)
        conn = resolution.conn
        if spec.scope == "node":
            helpers = [{"node": n, "pod": object_name("drillctl-skew", step_id, n)} for n in resolution.nodes]
            state: dict[str, Any] = {"scope": "node", "seed": self._seed, "offset": spec.offset, "helpers": helpers}
            return Undo(self.name, step_id, {**recorded(conn), "matched": resolution.matched, **state})
        ref = _workload(spec)
        found = resolution.workload
        assert found is not None
        return Undo(
            self.name,
            step_id,
            {
                **recorded(conn),
                "scope": "workload",
                "kind": ref.kind,
                "name": ref.name,
                "namespace": ref.namespace or conn.namespace,
                "uid": found["metadata"]["uid"],
                "containers": planned_env(spec, found),
                "annotations": None if found["metadata"].get("annotations") is None else marks_before(found),
            },
        )

    async def inject(self, spec: ClockSkewFault, undo: Undo) -> None:
        if undo.state["scope"] == "node":
            await self._inject_node(spec, undo)
        else:
            await self._inject_workload(spec, undo)

    async def revert(self, undo: Undo) -> list[str]:
        if undo.state["scope"] == "node":
            return await self._revert_node(undo)
        return await self._revert_workload(undo)

    def touched(self, undo: Undo) -> Touched:
        """The workload, or each node with its helper pod (and the seed that chose the nodes)."""
        state = undo.state
        if state["scope"] == "node":
            helpers = state["helpers"]
            targets = [t for h in helpers for t in (f"node/{h['node']}", f"pod/{state['namespace']}/{h['pod']}")]
            return Touched(tuple(targets), state["seed"])
        return Touched((f"{state['kind'].lower()}/{state['namespace']}/{state['name']}",))

    def describe(self, spec: ClockSkewFault) -> str:
        sign = "+" if spec.offset > 0 else "-"
        shift = f"{sign}{format_duration(abs(spec.offset))}"
        if spec.scope == "node":
            nodes = _nodes(spec)
            which = ", ".join(nodes.names) or nodes.label_selector or "chosen nodes"
            return (
                f"step the wall clock of Kubernetes node(s) {which} by {shift} from a privileged helper pod "
                f"({self._limits.helper_image}), stepped back when it ends, for {format_duration(spec.duration)}"
            )
        ref = _workload(spec)
        rate = f", running at x{spec.drift:g}" if spec.drift is not None else ""
        containers = f"container {ref.container}" if ref.container else "every container"
        return (
            f"{ref.kind} {ref.name}: {containers} under libfaketime ({shift}{rate}) by patching its pod template; "
            f"this is a rolling restart of its pods, and another on revert; for {format_duration(spec.duration)}"
        )

    # --- scope workload -------------------------------------------------------------------------

    async def _inject_workload(self, spec: ClockSkewFault, undo: Undo) -> None:
        state = undo.state
        changes = state["containers"]
        mark = step_mark(undo.step_id, spec.duration, workloads.mark_prior(changes))
        try:
            await workloads.apply_env(
                reconnect(state), state["kind"], state["namespace"], state["name"], state["uid"], changes, mark
            )
        except FaultError as e:
            raise FaultError(f"clock.skew {spec.name}: {e}") from e

    async def _revert_workload(self, undo: Undo) -> list[str]:
        """Put back the recorded env lists; keep (and report) variables someone else changed meanwhile."""
        state = undo.state
        what = f"{state['kind']} {state['namespace']}/{state['name']}"
        restored = await workloads.restore_env(
            reconnect(state),
            state["kind"],
            state["namespace"],
            state["name"],
            state["uid"],
            state["containers"],
            state["annotations"] or {},
            split_step(undo.step_id)[0],
        )
        if restored.outcome == "vanished":
            self._log.warning("revert_target_vanished", step=undo.step_id, workload=what)
            return [restored.note(what)]
        if restored.conflicts:
            self._log.warning("revert_conflict", step=undo.step_id, workload=what, conflicts=restored.conflicts)
        if restored.outcome == "restored":
            self._log.info("workload_restored", step=undo.step_id, workload=what, conflicts=restored.conflicts)
        return [restored.note(what)]

    # --- scope node -----------------------------------------------------------------------------

    async def _inject_node(self, spec: ClockSkewFault, undo: Undo) -> None:
        conn = reconnect(undo.state)
        core = client.CoreV1Api(conn.api)
        for helper in undo.state["helpers"]:
            mark = step_mark(undo.step_id, spec.duration + HELPER_MARGIN, {"node": helper["node"]})
            manifest = helper_pod(
                helper["pod"], helper["node"], self._limits.helper_image, spec.offset, spec.duration, mark.annotations()
            )
            await conn.call(core.create_namespaced_pod, undo.state["namespace"], manifest)
            self._log.info("clock_helper_created", step=undo.step_id, pod=helper["pod"], node=helper["node"])

    async def _revert_node(self, undo: Undo) -> list[str]:
        """Delete each helper (its TERM trap steps the clock back) and wait until it is gone."""
        pods = [h["pod"] for h in undo.state["helpers"]]
        await delete_pods(reconnect(undo.state), undo.state["namespace"], pods, GONE_TIMEOUT)
        self._log.info("clock_helpers_gone", step=undo.step_id, pods=pods)
        return []


# --- pure helpers -----------------------------------------------------------------------------------


def node_opt_in_message(fault: str) -> str:
    return (
        f"clock.skew {fault}: scope node changes the clock of real nodes; opt in with "
        "`targets.kubernetes.allow_node_clock_change: true` in the drill"
    )


def _nodes(spec: ClockSkewFault) -> Any:
    if spec.nodes is None:
        raise PreflightError(f"clock.skew {spec.name}: scope node needs `nodes`")
    return spec.nodes


def _workload(spec: ClockSkewFault) -> Any:
    if spec.workload is None:
        raise PreflightError(f"clock.skew {spec.name}: scope workload needs `workload`")
    return spec.workload


def faketime_env(spec: ClockSkewFault) -> dict[str, str]:
    """The variables drillctl sets: the same offset line as the local driver's file (`+90`, `+90 x1.01`)."""
    return {
        "LD_PRELOAD": spec.library or DEFAULT_LIBRARY,
        "FAKETIME": offset_line(spec.offset, spec.drift),
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }


def planned_env(spec: ClockSkewFault, workload: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per chosen container: its index, name, env as stored (None when absent) and env with the skew.

    An existing LD_PRELOAD is kept after libfaketime; FAKETIME_DONT_FAKE_MONOTONIC is only added
    (a value the workload sets itself wins). Variables set through valueFrom cannot be combined.
    """
    ref = _workload(spec)
    containers: Sequence[Mapping[str, Any]] = workload["spec"]["template"]["spec"]["containers"]
    names = [c["name"] for c in containers]
    if ref.container is not None and ref.container not in names:
        raise PreflightError(
            f"clock.skew {spec.name}: {ref.kind} {ref.name} has no container {ref.container!r} "
            f"(containers: {', '.join(names)})"
        )
    wanted = faketime_env(spec)
    plan = []
    for index, container in enumerate(containers):
        if ref.container is not None and container["name"] != ref.container:
            continue
        env: list[dict[str, Any]] | None = container.get("env")
        current = {e["name"]: e for e in env or []}
        values = dict(wanted)
        for key in values:
            if key in current and "value" not in current[key] and current[key].get("valueFrom") is not None:
                raise PreflightError(
                    f"clock.skew {spec.name}: container {container['name']} sets {key} through valueFrom; "
                    "drillctl cannot combine it with libfaketime"
                )
        preload = current.get("LD_PRELOAD", {}).get("value")
        if preload and values["LD_PRELOAD"] not in preload.replace(" ", ":").split(":"):
            values["LD_PRELOAD"] = f"{values['LD_PRELOAD']}:{preload}"
        if "FAKETIME_DONT_FAKE_MONOTONIC" in current:
            del values["FAKETIME_DONT_FAKE_MONOTONIC"]
        injected = [({"name": e["name"], "value": values[e["name"]]} if e["name"] in values else e) for e in env or []]
        injected += [{"name": k, "value": v} for k, v in values.items() if k not in current]
        plan.append({"index": index, "name": container["name"], "env": env, "injected": injected, "set": values})
    return plan
