"""gc.pause and memory.pressure in Kubernetes pods, through an ephemeral container.

The ephemeral container (`pods/ephemeralcontainers`) runs the helper image with
`targetContainerName`, so it shares the target container's process namespace: the pause loop
sends SIGSTOP/SIGCONT to the target's processes, the ballast holds memory charged to the pod.
The pause needs a pod with `shareProcessNamespace: true`: otherwise the target's main process is
PID 1 of the namespace the loop runs in, and the kernel drops SIGSTOP sent to a namespace's init
from inside it (kill succeeds, nothing stops), which a real node showed.
Both loops end by themselves after the fault's duration (their own clock, /proc/uptime), so a
dead drillctl leaves nothing running past it.

An ephemeral container cannot be removed from a pod. Revert therefore ends the loop early by
`pods/exec` into it (SIGTERM to the loop, whose trap sends SIGCONT first) and says which way it
ended: confirmed by the exec, or left to its own deadline when the exec is not possible (KWOK
serves exec without running anything, so tests see the second case).
"""

from __future__ import annotations

import hashlib
import math
from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.utils import parse_quantity

from orchestrator.errors import BackendError, PreflightError
from orchestrator.faults.base import Touched
from orchestrator.kube import ephemeral
from orchestrator.kube.access import KubeConnection, reconnect, recorded
from orchestrator.kube.driver import KubeDriver
from orchestrator.kube.ephemeral import PID_FILE
from orchestrator.kube.marks import annotation_ops, marks_before, object_name, split_step, step_mark, unmark
from orchestrator.kube.objects import patch_pod, read_object
from orchestrator.kube.plan import FaultPlan
from orchestrator.kube.safety import Permission
from orchestrator.kube.selection import Chosen
from orchestrator.model.durations import format_duration
from orchestrator.model.sizes import size_bytes
from orchestrator.model.spec import GcPauseFault, MemoryPressureFault, PodSelection
from orchestrator.model.undo import Undo

CHUNK = 64 * 2**20
"""The ballast grows by at most this much at a time (a shell string doubles while it is read)."""
RAMP_STEPS = 10

_COMMON = rf"""
set -u
echo $$ > {PID_FILE}
now_cs() {{ read -r up _ < /proc/uptime; echo "${{up%.*}}${{up#*.}}"; }}
secs() {{ echo "$(( $1 / 100 )).$(( $1 % 100 / 10 ))$(( $1 % 10 ))"; }}
# Sleep until uptime reaches $1 (centiseconds), in slices of at most 1s run in the background:
# a trapped signal ends a `wait` at once, and one that a shell misses (dash can lose a signal
# that lands just before its `wait` blocks) is handled at the end of the slice. $! is set as soon
# as a slice starts, so a trap always knows which sleep to end.
nap_until() {{
  while left=$(( $1 - $(now_cs) )); [ "$left" -gt 0 ]; do
    sleep "$(secs $(( left > 100 ? 100 : left )))" & wait "$!"
  done
}}
"""

PAUSE_SCRIPT = (
    _COMMON
    + r"""
own=$(cat /proc/self/cgroup)
# The target's processes: those outside this container's own cgroup whose cgroup path names the
# target container's ID (every runtime's path holds it; the pod's other containers are left alone).
targets() {
  for d in /proc/[0-9]*; do
    c=$(cat "$d/cgroup" 2>/dev/null) || continue
    [ -n "$c" ] && [ "$c" != "$own" ] || continue
    case $c in *"$TARGET_ID"*) printf '%s ' "${d#/proc/}" ;; esac
  done
}
stopped=""
resume() { [ -n "$stopped" ] && kill -CONT $stopped 2>/dev/null; stopped=""; }
finish() {
  [ -n "${!:-}" ] && kill "$!" 2>/dev/null
  resume
  t=$(targets); [ -n "$t" ] && kill -CONT $t 2>/dev/null
  rm -f /tmp/drillctl-loop.pid
  echo "drillctl: pause loop ended ($1)"
  exit 0
}
trap 'finish stopped' TERM INT HUP
schedule=$(awk -v p="$PAUSE_CS" -v e="$EVERY_CS" -v j="$JITTER_CS" -v d="$DURATION_CS" -v s="$SEED" 'BEGIN {
  srand(s)
  for (k = 0; k * e < d; k++) {
    at = k * e + (j > 0 ? int((rand() * 2 - 1) * j) : 0)
    if (at < 0) at = 0
    if (at + p <= d) print at
  }
}')
start=$(now_cs)
for at in $schedule; do
  nap_until $(( start + at ))
  stopped=$(targets)
  [ -n "$stopped" ] && kill -STOP $stopped
  nap_until $(( $(now_cs) + PAUSE_CS ))
  resume
done
nap_until $(( start + DURATION_CS ))
finish "duration over"
"""
)

BALLAST_SCRIPT = (
    _COMMON
    + r"""
release() {
  [ -n "${!:-}" ] && kill "$!" 2>/dev/null
  rm -f /tmp/drillctl-loop.pid
  echo "drillctl: ballast released ($1)"
  exit 0
}
trap 'release stopped' TERM INT HUP
# Resident memory held in shell variables: written bytes (x, not NUL, which a shell drops),
# gone with this process. busybox has head and tr; no tmpfs, which would outlive it.
i=0
while [ "$i" -lt "$STEPS" ]; do
  eval "b$i=\$(head -c $CHUNK /dev/zero | tr '\\000' x)"
  i=$((i + 1))
  nap_until $(( $(now_cs) + STEP_CS ))
done
echo "drillctl: holding $SIZE bytes for $(secs "$HOLD_CS")s"
nap_until $(( $(now_cs) + HOLD_CS ))
release "duration over"
"""
)


@dataclass(frozen=True)
class Loop:
    """What differs between the two faults, per pod: the loop's parameters and how long it lives."""

    env: dict[str, str]
    lifetime: float


@dataclass(frozen=True)
class Resolution:
    conn: KubeConnection
    namespace: str
    pods: list[dict[str, Any]]
    """The chosen pods, as stored."""
    chosen: Chosen | None
    refusals: list[str]


class _EphemeralDriver(KubeDriver[Resolution]):
    """Shared by both faults: choose pods, attach the loop, end it early on revert."""

    prefix: str
    script: str

    @abstractmethod
    def _loop(self, spec: Any, pod: Mapping[str, Any], container: str, step_id: str) -> Loop:
        """The loop's parameters for one pod; PreflightError when the fault does not fit it."""

    async def _resolve(self, spec: Any) -> Resolution:
        """Read-only: the pods chosen now (as stored), and every rule that refuses the fault."""
        conn, refusals = self._connect()
        namespace, chosen, more = await self._choose_pods(conn, spec.name, spec.pods, permissions)
        refusals += more
        if chosen is None:
            return Resolution(conn, namespace, [], None, refusals)
        core = client.CoreV1Api(conn.api)
        found = []
        for name in chosen.names:
            pod = await read_object(conn, core.read_namespaced_pod, name, namespace)
            if pod is None:
                refusals.append(f"{spec.type} {spec.name}: pod {namespace}/{name} vanished")
                continue
            try:
                self._loop(spec, pod, target_container(spec, pod), f"plan/{spec.name}")
            except PreflightError as e:
                refusals.append(str(e))
            found.append(pod)
        return Resolution(conn, namespace, found, chosen, refusals)

    async def plan(self, spec: Any) -> FaultPlan:
        r = await self._resolve(spec)
        touches = tuple(
            f"pod {r.namespace}/{p['metadata']['name']} (ephemeral container on {target_container(spec, p)})"
            for p in r.pods
        )
        if r.chosen is not None:
            touches += (f"({len(r.chosen.names)} of {r.chosen.matched} matching pods)",)
        effects = ("ephemeral containers stay in the pod spec after the fault (Kubernetes cannot remove them)",)
        return FaultPlan(spec.name, r.conn.context, r.namespace, self._seed, touches, effects, tuple(r.refusals))

    async def prepare(self, spec: Any, step_id: str) -> Undo:
        r = await self._resolved(spec)
        assert r.chosen is not None
        entries = []
        for pod in r.pods:
            container = target_container(spec, pod)
            loop = self._loop(spec, pod, container, step_id)
            name = object_name(self.prefix, step_id, split_step(step_id)[1])
            taken = {c["name"] for c in pod["spec"].get("ephemeralContainers") or []}
            if name in taken:
                raise PreflightError(f"{spec.type} {spec.name}: pod {pod['metadata']['name']} already has {name}")
            entries.append(
                {
                    "pod": pod["metadata"]["name"],
                    "uid": pod["metadata"]["uid"],
                    "target": container,
                    "ephemeral": name,
                    "env": loop.env,
                    "lifetime": loop.lifetime,
                    "annotations": marks_before(pod),
                }
            )
        state = {"namespace": r.namespace, "seed": r.chosen.seed, "matched": r.chosen.matched, "pods": entries}
        return Undo(self.name, step_id, {**recorded(r.conn), **state})

    async def inject(self, spec: Any, undo: Undo) -> None:
        conn = reconnect(undo.state)
        core = client.CoreV1Api(conn.api)
        namespace = undo.state["namespace"]
        for entry in undo.state["pods"]:
            container = ephemeral.container(
                entry["ephemeral"], self._limits.helper_image, entry["target"], self.script, entry["env"]
            )
            mark = step_mark(undo.step_id, entry["lifetime"], {"ephemeral": entry["ephemeral"]})
            pod = await read_object(conn, core.read_namespaced_pod, entry["pod"], namespace)
            if pod is None or pod["metadata"]["uid"] != entry["uid"]:
                raise BackendError(f"{spec.type} {spec.name}: pod {namespace}/{entry['pod']} is gone")
            if ops := annotation_ops(pod["metadata"].get("annotations"), mark.annotations()):
                await patch_pod(conn, namespace, entry["pod"], entry["uid"], ops)
            await conn.call(
                core.patch_namespaced_pod_ephemeralcontainers,
                entry["pod"],
                namespace,
                {"spec": {"ephemeralContainers": [container]}},
                _content_type="application/strategic-merge-patch+json",
            )
            self._log.info("ephemeral_container_added", step=undo.step_id, pod=entry["pod"], name=entry["ephemeral"])

    async def revert(self, undo: Undo) -> list[str]:
        """Stop each loop through exec; where that cannot be confirmed, its own deadline ends it (noted)."""
        conn = reconnect(undo.state)
        core = client.CoreV1Api(conn.api)
        namespace = undo.state["namespace"]
        run_id = split_step(undo.step_id)[0]
        notes = []
        for entry in undo.state["pods"]:
            pod = await read_object(conn, core.read_namespaced_pod, entry["pod"], namespace)
            if pod is None or pod["metadata"]["uid"] != entry["uid"]:
                self._log.warning(
                    "revert_pod_vanished", step=undo.step_id, pod=entry["pod"], outcome="loop gone with it"
                )
                notes.append(f"pod {namespace}/{entry['pod']} vanished meanwhile: its loop went with it")
                continue
            deadline = f"it ends by itself {format_duration(entry['lifetime'])} after it started"
            outcome = await ephemeral.stop_loop(conn, pod, entry["ephemeral"], deadline)
            self._log.log(
                30 if outcome.startswith("not stopped") else 20,
                "ephemeral_loop_revert",
                step=undo.step_id,
                pod=entry["pod"],
                container=entry["ephemeral"],
                outcome=outcome,
            )
            notes.append(f"pod {namespace}/{entry['pod']}, loop {entry['ephemeral']}: {outcome}")
            if ops := unmark(pod, entry["annotations"], run_id):
                await patch_pod(conn, namespace, entry["pod"], entry["uid"], ops)
        return notes

    def touched(self, undo: Undo) -> Touched:
        """The pods that got an ephemeral container, and the seed that chose them."""
        namespace = undo.state["namespace"]
        return Touched(tuple(f"pod/{namespace}/{e['pod']}" for e in undo.state["pods"]), undo.state["seed"])


class KubeGcPauseDriver(_EphemeralDriver):
    """`gc.pause@kubernetes`: SIGSTOP the target container's processes for `pause`, every `every`."""

    name = "gc.pause@kubernetes"
    prefix = "drillctl-pause"
    script = PAUSE_SCRIPT

    def _loop(self, spec: GcPauseFault, pod: Mapping[str, Any], container: str, step_id: str) -> Loop:
        if not pod["spec"].get("shareProcessNamespace"):
            raise PreflightError(
                f"gc.pause {spec.name}: pod {pod['metadata']['name']} does not set shareProcessNamespace: true, so "
                f"the main process of container {container} is PID 1 of its own PID namespace, where the pause loop "
                "runs, and PID 1 ignores SIGSTOP sent from inside its namespace: the pause would stop nothing. "
                "Set shareProcessNamespace: true in the pod spec"
            )
        target = container_id(pod, container)
        if not target:
            raise PreflightError(
                f"gc.pause {spec.name}: container {container} of pod {pod['metadata']['name']} is not running "
                "(no container ID in the pod's status)"
            )
        seed = int(hashlib.sha256(f"{self._seed}/{step_id}".encode()).hexdigest()[:7], 16)
        env = {
            "TARGET_ID": target,
            "PAUSE_CS": str(_centis(spec.pause)),
            "EVERY_CS": str(_centis(spec.every)),
            "JITTER_CS": str(_centis(spec.jitter)),
            "DURATION_CS": str(_centis(spec.duration)),
            "SEED": str(seed),
        }
        return Loop(env, spec.duration)

    def describe(self, spec: GcPauseFault) -> str:
        jitter = f" ±{format_duration(spec.jitter)}" if spec.jitter else ""
        return (
            f"SIGSTOP the processes of the target container of {_pods(spec)} for {format_duration(spec.pause)} every "
            f"{format_duration(spec.every)}{jitter}, from an ephemeral container ({self._limits.helper_image}) that "
            f"ends by itself after {format_duration(spec.duration)}"
        )


class KubeMemoryPressureDriver(_EphemeralDriver):
    """`memory.pressure@kubernetes`: a shell in an ephemeral container holds `size` bytes in the pod."""

    name = "memory.pressure@kubernetes"
    prefix = "drillctl-ballast"
    script = BALLAST_SCRIPT

    def _loop(self, spec: MemoryPressureFault, pod: Mapping[str, Any], container: str, step_id: str) -> Loop:
        limit = container_memory_limit(pod, container)
        size = size_bytes(spec.size, limit)
        if size is None:
            raise PreflightError(
                f"memory.pressure {spec.name}: {spec.size} is a share of a memory limit, but container {container} "
                f"of pod {pod['metadata']['name']} has none"
            )
        if limit is not None and size > limit and not spec.force:
            raise PreflightError(
                f"memory.pressure {spec.name}: {spec.size} is above the memory limit of container {container} "
                f"({limit} bytes); set force: true"
            )
        steps = max(math.ceil(size / CHUNK), RAMP_STEPS if spec.ramp else 1)
        env = {
            "CHUNK": str(math.ceil(size / steps)),
            "STEPS": str(steps),
            "STEP_CS": str(_centis(spec.ramp / steps)),
            "HOLD_CS": str(_centis(spec.duration)),
            "SIZE": str(size),
        }
        return Loop(env, spec.ramp + spec.duration)

    def describe(self, spec: MemoryPressureFault) -> str:
        ramp = f", ramped over {format_duration(spec.ramp)}" if spec.ramp else ""
        return (
            f"hold {spec.size} in {_pods(spec)} (charged to the pod, beside its target container) from an ephemeral "
            f"container ({self._limits.helper_image}){ramp}, for {format_duration(spec.duration)}; it ends by itself"
        )


# --- pure helpers -----------------------------------------------------------------------------------


def permissions(namespace: str) -> list[Permission]:
    """Reading and marking pods, adding ephemeral containers, and exec to stop their loops early."""
    return [
        *(Permission(v, "pods", namespace) for v in ("get", "list", "patch")),
        Permission("patch", "pods", namespace, subresource="ephemeralcontainers"),
        Permission("create", "pods", namespace, subresource="exec"),
    ]


def _centis(seconds: float) -> int:
    return round(seconds * 100)


def _pods(spec: Any) -> str:
    pods: PodSelection = spec.pods
    which = ", ".join(pods.names) or pods.label_selector or "chosen pods"
    return f"pod(s) {which}"


def target_container(spec: Any, pod: Mapping[str, Any]) -> str:
    """The container named by the selection, else the pod's first."""
    names: list[str] = [c["name"] for c in pod["spec"]["containers"]]
    wanted: str | None = spec.pods.container
    if wanted is None:
        return names[0]
    if wanted not in names:
        raise PreflightError(
            f"{spec.type} {spec.name}: pod {pod['metadata']['name']} has no container {wanted!r} "
            f"(containers: {', '.join(names)})"
        )
    return wanted


def container_id(pod: Mapping[str, Any], container: str) -> str:
    """The runtime's ID of a container (`containerd://<id>` in the status, without the scheme); "" if none yet."""
    for status in pod.get("status", {}).get("containerStatuses") or []:
        if status.get("name") == container:
            return str(status.get("containerID") or "").rpartition("://")[2]
    return ""


def container_memory_limit(pod: Mapping[str, Any], container: str) -> int | None:
    for c in pod["spec"]["containers"]:
        if c["name"] == container:
            limit = (c.get("resources") or {}).get("limits", {}).get("memory")
            return None if limit is None else int(parse_quantity(limit))  # type: ignore[no-untyped-call]
    return None
