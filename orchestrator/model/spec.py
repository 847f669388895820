"""The drill spec v1: frozen, typed, and strict (unknown keys are errors).

Only shape and single-field rules live here; rules that relate fields across the
drill (a fault naming a declared proxy, a fault inside its phase) are in `loading`.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Discriminator, Field, Tag, field_validator, model_validator

from orchestrator.model.alerts import ALERT_NAME_PATTERN, AlertSelector, parse_matcher
from orchestrator.model.base import Name, Strict
from orchestrator.model.durations import NonNegativeDuration, PositiveDuration, SignedDuration
from orchestrator.model.sizes import ByteSize, MemorySize
from orchestrator.model.workload import OperationKind, WorkloadSpec

API_VERSION = "drillctl.dev/v1"
MIN_INTERVAL = 0.010
RUNBOOK_PATTERN = r"^runbooks/[A-Za-z0-9_./-]+\.md#[A-Za-z0-9_-]+$"

RunbookRef = Annotated[
    str,
    Field(pattern=RUNBOOK_PATTERN, description="runbooks/<file>.md#<anchor>, resolved from the drill's folder up"),
]
Toxicity = Annotated[float, Field(ge=0.0, le=1.0, description="share of connections the toxic applies to")]


# --- probes -------------------------------------------------------------------------------------


class HttpProbe(Strict):
    type: Literal["http"]
    name: Name
    url: Annotated[str, Field(pattern=r"^https?://")]
    method: Literal["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"] = "GET"
    expect_status: list[Annotated[int, Field(ge=100, le=599)]] = Field(default_factory=lambda: [200])
    body_match: str | None = Field(default=None, description="regular expression the body must contain")
    timeout: PositiveDuration = 1.0
    reuse_connections: bool = Field(
        default=False, description="keep-alive; off by default so every sample sees connection-level faults"
    )

    @field_validator("body_match")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        return _check_regex(value)


class TcpProbe(Strict):
    type: Literal["tcp"]
    name: Name
    host: str
    port: Annotated[int, Field(ge=1, le=65535)]
    timeout: PositiveDuration = 1.0


class CommandProbe(Strict):
    type: Literal["command"]
    name: Name
    argv: Annotated[list[str], Field(min_length=1)] = Field(description="no shell; runs in the drill file's folder")
    expect_exit: int = 0
    output_match: str | None = Field(default=None, description="regular expression stdout must contain")
    timeout: PositiveDuration = 5.0

    @field_validator("output_match")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        return _check_regex(value)


class KubernetesProbeBase(Strict):
    """Answered from a watch-fed cache shared by every probe of one kind and namespace (no API call per sample)."""

    type: Literal["kubernetes"]
    name: Name
    timeout: PositiveDuration = Field(default=2.0, description="how long a sample waits for the cache's first sync")


class WorkloadAvailableProbe(KubernetesProbeBase):
    check: Literal["available_replicas"]
    kind: Literal["Deployment", "StatefulSet"]
    workload: str = Field(description="name of the Deployment or StatefulSet")
    namespace: str | None = Field(default=None, description="default: the run's namespace")
    min: Annotated[int, Field(ge=1)] = Field(description="passes while status.availableReplicas >= min")


class PodsReadyProbe(KubernetesProbeBase):
    check: Literal["ready_pods"]
    label_selector: str = Field(description="kubectl syntax: app=web,tier in (a,b),!canary")
    namespace: str | None = Field(default=None, description="default: the run's namespace")
    min: Annotated[int, Field(ge=1)] = Field(description="passes while at least min matching pods are Ready")

    @field_validator("label_selector")
    @classmethod
    def _parses(cls, value: str) -> str:
        parse_label_selector(value)
        return value


class NodeReadyProbe(KubernetesProbeBase):
    check: Literal["node_ready"]
    node: str
    allow_unschedulable: bool = Field(default=False, description="a cordoned node that is Ready still passes")


KubernetesProbe = Annotated[WorkloadAvailableProbe | PodsReadyProbe | NodeReadyProbe, Field(discriminator="check")]


class PrometheusProbe(Strict):
    """A PromQL instant query: passes when it returns series and every value satisfies `op threshold`."""

    type: Literal["prometheus"]
    name: Name
    url: Annotated[str, Field(pattern=r"^https?://[^\s]+$", description="Prometheus base URL")]
    query: Annotated[str, Field(min_length=1, description="PromQL instant query")]
    op: Literal["<", "<=", ">", ">=", "==", "!="]
    threshold: float
    empty: Literal["pass", "fail"] = Field(default="fail", description="verdict when the query returns no series")
    timeout: PositiveDuration = 2.0


ProbeSpec = Annotated[
    HttpProbe | TcpProbe | CommandProbe | KubernetesProbe | PrometheusProbe, Field(discriminator="type")
]


LabelOp = Literal["=", "!=", "in", "notin", "exists", "!"]
_LABEL_KEY = r"(?:[A-Za-z0-9][-A-Za-z0-9_.]*/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?"
_LABEL_VALUE = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_EXISTS = re.compile(rf"^(!?)\s*({_LABEL_KEY})$")
_EQUALS = re.compile(rf"^({_LABEL_KEY})\s*(==|=|!=)\s*({_LABEL_VALUE})$")
_SET = re.compile(rf"^({_LABEL_KEY})\s+(in|notin)\s*\(\s*({_LABEL_VALUE}(?:\s*,\s*{_LABEL_VALUE})*)\s*\)$")


def parse_label_selector(selector: str) -> tuple[tuple[str, LabelOp, frozenset[str]], ...]:
    """kubectl's label selector syntax as (key, op, values) requirements; ValueError names the bad term.

    Parsed here (pure) so a probe can match pods from a shared cache without one watch per selector.
    """
    terms, depth, start = [], 0, 0
    for i, char in enumerate(selector):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(selector[start:i])
            start = i + 1
    terms.append(selector[start:])
    out: list[tuple[str, LabelOp, frozenset[str]]] = []
    for raw in terms:
        term = raw.strip()
        if not term and len(terms) == 1:
            break
        if m := _EXISTS.match(term):
            out.append((m[2], "!" if m[1] else "exists", frozenset()))
        elif m := _EQUALS.match(term):
            out.append((m[1], "!=" if m[2] == "!=" else "=", frozenset([m[3]])))
        elif m := _SET.match(term):
            op: LabelOp = "in" if m[2] == "in" else "notin"
            out.append((m[1], op, frozenset(v.strip() for v in m[3].split(","))))
        else:
            expected = "k, !k, k=v, k!=v, k in (a,b), k notin (a)"
            raise ValueError(f"not a label selector term: {term!r} (expected {expected})")
    return tuple(out)


def _check_regex(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as e:
            raise ValueError(f"not a valid regular expression: {e}") from e
    return value


class SteadyState(Strict):
    interval: PositiveDuration = Field(default=0.1, description="sampling period of every probe; >= 10ms")
    tolerance: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        default=0.0, description="share of failed baseline samples per probe that still counts as steady"
    )
    max_in_flight: Annotated[int, Field(ge=1, le=10000)] | None = Field(
        default=None, description="samples of one probe running at once; default covers a hung target"
    )
    probes: Annotated[list[ProbeSpec], Field(min_length=1)]

    @field_validator("interval")
    @classmethod
    def _not_too_fast(cls, value: float) -> float:
        if value < MIN_INTERVAL:
            raise ValueError(f"must be at least 10ms, got {value * 1000:g}ms")
        return value


# --- targets ------------------------------------------------------------------------------------


class RestartPolicy(Strict):
    policy: Literal["never", "on-failure", "always"] = "never"
    delay: NonNegativeDuration = 1.0
    max_restarts: Annotated[int, Field(ge=0)] = 5


class Readiness(Strict):
    probe: ProbeSpec
    timeout: PositiveDuration = 30.0
    interval: PositiveDuration = 0.1


class LocalProcess(Strict):
    name: Name
    argv: Annotated[list[str], Field(min_length=1)]
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = Field(default=None, description="relative to the drill file's folder")
    ready: Readiness | None = None
    restart: RestartPolicy = Field(default_factory=RestartPolicy)
    stop_grace: PositiveDuration = 5.0
    clock: Literal["real", "faketime"] = Field(
        default="real", description="faketime: started under libfaketime so clock.skew can shift its wall clock"
    )
    fake_monotonic: bool = Field(
        default=False, description="with clock: faketime, let the skew move CLOCK_MONOTONIC too (off: untouched)"
    )
    memory_limit: ByteSize | None = Field(
        default=None, description="run in a cgroup of its own with this memory limit (cgroup v2 or v1 memory)"
    )


class NodeSpec(Strict):
    """A named group of local processes that fails together, like a machine (primary, replica...)."""

    name: Name
    processes: Annotated[list[Name], Field(min_length=1)]
    proxies: list[Name] = Field(default_factory=list, description="Toxiproxy proxies in front of this node")


class AdoptedProcess(Strict):
    """A process drillctl did not start, found when a fault needs it (with its descendants); docs/targets.md.

    drillctl cannot restart what it did not start: `restart` says how it comes back after a node loss (an argv,
    run detached in a session of its own), or `restore: false` that it never does (the system brings it back).
    """

    name: Name
    pidfile: str | None = Field(default=None, description="a file holding its pid")
    port: Annotated[int, Field(ge=1, le=65535)] | None = Field(default=None, description="the TCP port it listens on")
    cmdline: str | None = Field(default=None, description="regular expression its command line (space-joined) matches")
    restart: Annotated[list[str], Field(min_length=1)] | None = Field(
        default=None, description="argv (no shell) that brings it back after node.loss crash or stop"
    )
    cwd: str | None = Field(default=None, description="folder of the restart, relative to the drill file's folder")
    restore: bool = Field(default=True, description="false: drillctl never brings it back (no restart)")

    @field_validator("cmdline")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        return _check_regex(value)

    @model_validator(mode="after")
    def _found_and_brought_back(self) -> AdoptedProcess:
        _one_of(self, ("pidfile", "port", "cmdline"), None, "an adopted process")
        if self.restore and self.restart is None:
            raise ValueError("give `restart` (how it is brought back) or `restore: false`")
        if not self.restore and self.restart is not None:
            raise ValueError("`restore: false` takes no `restart`")
        return self


class LocalTargets(Strict):
    processes: list[LocalProcess] = Field(default_factory=list)
    adopted: list[AdoptedProcess] = Field(
        default_factory=list, description="processes drillctl did not start; nodes group them like started ones"
    )
    nodes: list[NodeSpec] = Field(default_factory=list)

    def members(self, name: str) -> tuple[list[LocalProcess], list[AdoptedProcess]]:
        """A process by name, or every process of the node by that name: the started ones, and the adopted ones."""
        node = next((n for n in self.nodes if n.name == name), None)
        names = set(node.processes) if node is not None else {name}
        return [p for p in self.processes if p.name in names], [a for a in self.adopted if a.name in names]

    def unskewable(self, name: str) -> str | None:
        """Why clock.skew cannot move the clock of this process or node, None when it can: drillctl moves a clock
        through libfaketime, which only processes it starts with clock: faketime have preloaded."""
        started, adopted = self.members(name)
        why = [
            f"process {a.name} is adopted: drillctl did not start it, so it runs without libfaketime" for a in adopted
        ]
        why += [
            f"process {p.name} was not started under libfaketime: set clock: faketime on it"
            for p in started
            if p.clock != "faketime"
        ]
        if not why:
            return None
        return "; ".join(why) if name not in {n.name for n in self.nodes} else f"node {name}: " + "; ".join(why)


class KubernetesTargets(Strict):
    """The cluster a drill may touch, and how much of it. Flags (--context, --namespace) win over these."""

    context: str | None = Field(default=None, description="kubeconfig context; default: --context, else current")
    namespace: str | None = Field(
        default=None, description="default namespace of pod selections; default: --namespace, else the context's"
    )
    allowed_namespaces: list[str] = Field(
        default_factory=list, description="namespaces faults may touch; default: only the drill's namespace"
    )
    max_pods: Annotated[int, Field(ge=0)] = Field(default=10, description="most pods one fault may touch")
    max_nodes: Annotated[int, Field(ge=0)] = Field(default=1, description="most nodes one fault may touch")
    protected_contexts: list[str] = Field(
        default_factory=lambda: ["*prod*"], description="context name patterns that need --yes or allow_protected"
    )
    allow_protected: bool = Field(default=False, description="this drill may run in a protected context")
    allow_node_clock_change: bool = Field(
        default=False, description="clock.skew with scope: node changes a real node's clock; off unless said"
    )
    helper_image: str = Field(
        default="busybox:1.37", description="image of helper pods and ephemeral containers (pause loops, ballast)"
    )
    request_timeout: PositiveDuration = Field(default=10.0, description="deadline of every Kubernetes API call")


class Targets(Strict):
    local: LocalTargets = Field(default_factory=LocalTargets)
    kubernetes: KubernetesTargets | None = None


# --- Toxiproxy ----------------------------------------------------------------------------------


class ToxiproxyConfig(Strict):
    url: str = Field(default="auto", description="'auto' starts a private toxiproxy-server on loopback for the run")
    timeout: PositiveDuration = Field(default=5.0, description="deadline of every call to the Toxiproxy API")

    @field_validator("url")
    @classmethod
    def _url_or_auto(cls, value: str) -> str:
        if value != "auto" and not re.match(r"^https?://[^/\s]+/?$", value):
            raise ValueError(f"expected 'auto' or http://host:port, got {value!r}")
        return value


HostPort = Annotated[str, Field(pattern=r"^[^\s:]+:\d{1,5}$", description="host:port")]


class ProxySpec(Strict):
    name: Name
    listen: HostPort
    upstream: HostPort


# --- faults -------------------------------------------------------------------------------------


class Selection(Strict):
    """Kubernetes objects chosen by selectors, then `count` or `percent` of them in a seeded random order."""

    label_selector: str | None = None
    field_selector: str | None = None
    names: list[str] = Field(default_factory=list, description="only these objects (by name)")
    count: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="how many; default 1 (not with percent)"
    )
    percent: Annotated[float, Field(gt=0.0, le=100.0)] | None = Field(
        default=None, description="share of the matching objects, rounded up"
    )

    @model_validator(mode="after")
    def _count_or_percent(self) -> Selection:
        if self.count is not None and self.percent is not None:
            raise ValueError("give count or percent, not both")
        return self


class NodeSelection(Selection):
    pass


class PodSelection(Selection):
    namespace: str | None = Field(default=None, description="default: the drill's namespace")
    container: str | None = Field(default=None, description="container of the pod; default: the first")


class WorkloadRef(Strict):
    kind: Literal["Deployment", "StatefulSet"]
    name: str
    namespace: str | None = Field(default=None, description="default: the drill's namespace")
    container: str | None = Field(default=None, description="container whose clock moves; default: every one")


Backend = Literal["local", "kubernetes"]


class FaultBase(Strict):
    name: Name
    start: NonNegativeDuration = Field(default=0.0, description="offset from the start of the fault phase")
    duration: PositiveDuration
    runbook: RunbookRef | None = None

    @property
    def reverts_on_schedule(self) -> bool:
        """False for a fault left in place after its duration; the final rollback still reverts it."""
        return True

    @property
    def backend(self) -> Backend:
        """Where the fault acts; with its type, it picks the driver (`faults/registry.py`)."""
        return "local"


class NetworkFault(FaultBase):
    proxy: Name
    stream: Literal["upstream", "downstream"] = "downstream"
    toxicity: Toxicity = 1.0


class LatencyFault(NetworkFault):
    type: Literal["network.latency"]
    latency: NonNegativeDuration
    jitter: NonNegativeDuration = 0.0


class BandwidthFault(NetworkFault):
    type: Literal["network.bandwidth"]
    rate_kbps: Annotated[int, Field(ge=0, description="KB/s (1 KB = 1000 bytes); 0 is unlimited")]


class TimeoutFault(NetworkFault):
    type: Literal["network.timeout"]
    timeout: NonNegativeDuration = Field(description="close after this long; 0 holds connections until revert")


class ResetPeerFault(NetworkFault):
    type: Literal["network.reset_peer"]
    timeout: NonNegativeDuration = 0.0


class SlowCloseFault(NetworkFault):
    type: Literal["network.slow_close"]
    delay: NonNegativeDuration


class SlicerFault(NetworkFault):
    type: Literal["network.slicer"]
    average_size: Annotated[int, Field(ge=1)]
    size_variation: Annotated[int, Field(ge=0)] = 0
    delay: NonNegativeDuration = 0.0


class LimitDataFault(NetworkFault):
    type: Literal["network.limit_data"]
    bytes: Annotated[int, Field(ge=0)]


class DownFault(FaultBase):
    type: Literal["network.down"]
    proxy: Name


RESOLVER_TIMEOUT_LIMIT = 20.0
"""A resolver runs inside the fault's prepare step, which the engine bounds at 30s (`engine.DRIVER_DEADLINE`)."""


class TargetResolver(Strict):
    """Names a local target at injection time (docs/targets.md): exactly one of command, url, lease,
    label_selector. Its answer is a node or process name (or, with `names`, a key to one), a pid or a port."""

    command: Annotated[list[str], Field(min_length=1)] | None = Field(
        default=None, description="argv (no shell), run in the drill file's folder; its output is the answer"
    )
    url: Annotated[str, Field(pattern=r"^https?://[^\s]+$")] | None = Field(
        default=None, description="GET this URL; the JSON value at `pointer` is the answer"
    )
    pointer: Annotated[str, Field(pattern=r"^(/.*)?$")] = Field(
        default="", description="RFC 6901 JSON pointer into the answer of `url`, e.g. /leader/name"
    )
    lease: str | None = Field(default=None, description="a coordination.k8s.io Lease: its holderIdentity")
    label_selector: str | None = Field(default=None, description="the one Kubernetes pod matching it: its name")
    namespace: str | None = Field(default=None, description="lease, label_selector: default the drill's namespace")
    answer: Literal["name", "pid", "port"] = Field(
        default="name", description="what the answer is: a name, a pid, or a TCP port its target listens on"
    )
    names: dict[str, Name] = Field(
        default_factory=dict, description="answer -> local node or process, when the answers are other names"
    )
    timeout: PositiveDuration = Field(default=5.0, description=f"deadline (at most {RESOLVER_TIMEOUT_LIMIT:g}s)")

    @field_validator("label_selector")
    @classmethod
    def _parses(cls, value: str | None) -> str | None:
        if value is not None:
            parse_label_selector(value)
        return value

    @model_validator(mode="after")
    def _one_source(self) -> TargetResolver:
        _one_of(self, ("command", "url", "lease", "label_selector"), None, "a resolver")
        if self.timeout > RESOLVER_TIMEOUT_LIMIT:
            raise ValueError(f"timeout is at most {RESOLVER_TIMEOUT_LIMIT:g}s (a resolver runs inside prepare)")
        return self

    @property
    def source(self) -> Literal["command", "http", "lease", "label_selector"]:
        if self.command is not None:
            return "command"
        if self.url is not None:
            return "http"
        return "lease" if self.lease is not None else "label_selector"


def _by_name(fault: FaultBase, target: object) -> str:
    """A local fault's target by name (`local_target`): a resolver's answer is put in its place before a driver
    sees the fault, so a driver never reads a resolver there."""
    if not isinstance(target, str):
        raise ValueError(f"{fault.name} has no local target name")
    return target


def _name_or_resolver(value: object) -> str:
    return "resolver" if isinstance(value, dict | TargetResolver) else "name"


LocalTarget = Annotated[
    Annotated[Name, Tag("name")] | Annotated[TargetResolver, Tag("resolver")], Discriminator(_name_or_resolver)
]
"""A local node or process: its name, or a resolver that names it at injection time."""


class ClockSkewFault(FaultBase):
    type: Literal["clock.skew"]
    scope: Literal["process", "node", "workload"] = Field(
        default="process", description="process: a local faketime process; node: Kubernetes nodes; workload: pods"
    )
    target: LocalTarget | None = Field(
        default=None,
        description="scope process: a local process, or node, started with clock: faketime (or a resolver naming one)",
    )
    nodes: NodeSelection | None = Field(default=None, description="scope node: the Kubernetes nodes to skew")
    workload: WorkloadRef | None = Field(default=None, description="scope workload: a Deployment or StatefulSet")
    offset: SignedDuration = Field(description="shift of its wall clock, e.g. +90s or -5m")
    drift: Annotated[float, Field(gt=0)] | None = Field(
        default=None, description="clock rate while skewed, e.g. 1.01 runs 1% fast; default 1 (no drift)"
    )
    library: str | None = Field(
        default=None,
        description="scope workload: path of libfaketime inside the image (LD_PRELOAD); "
        "default /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    )

    @model_validator(mode="after")
    def _one_target(self) -> ClockSkewFault:
        wanted = {"process": "target", "node": "nodes", "workload": "workload"}[self.scope]
        _one_of(self, ("target", "nodes", "workload"), wanted, f"scope {self.scope}")
        return self

    @property
    def backend(self) -> Backend:
        return "local" if self.scope == "process" else "kubernetes"

    @property
    def local_target(self) -> str:
        return _by_name(self, self.target)


def _one_of(fault: Strict, fields: tuple[str, ...], wanted: str | None, context: str) -> None:
    """Exactly one target field is set (`wanted`, when the context decides which)."""
    given = [f for f in fields if getattr(fault, f) is not None]
    if wanted is not None and wanted not in given:
        raise ValueError(f"{context} needs `{wanted}`")
    if len(given) != 1:
        if not given:
            raise ValueError(f"give one of {', '.join(f'`{f}`' for f in fields)}")
        raise ValueError(f"give only one of {', '.join(f'`{f}`' for f in given)}")


class PodTargeted(FaultBase):
    """A fault on a local process (`target`) or on Kubernetes pods (`pods`)."""

    target: LocalTarget | None = None
    pods: PodSelection | None = Field(default=None, description="Kubernetes pods, through an ephemeral container")

    @model_validator(mode="after")
    def _one_target(self) -> PodTargeted:
        _one_of(self, ("target", "pods"), None, self.__class__.__name__)
        return self

    @property
    def backend(self) -> Backend:
        return "kubernetes" if self.pods is not None else "local"

    @property
    def local_target(self) -> str:
        return _by_name(self, self.target)


class GcPauseFault(PodTargeted):
    type: Literal["gc.pause"]
    target: LocalTarget | None = Field(
        default=None, description="a local process or node (or a resolver); all its processes freeze together"
    )
    pause: PositiveDuration
    every: PositiveDuration
    jitter: NonNegativeDuration = Field(default=0.0, description="each period varies by up to this much")


class MemoryPressureFault(PodTargeted):
    type: Literal["memory.pressure"]
    target: LocalTarget | None = Field(
        default=None, description="a local process (or a resolver); inside its cgroup with a memory_limit"
    )
    size: MemorySize
    ramp: NonNegativeDuration = Field(default=0.0, description="reach `size` gradually over this long")
    force: bool = Field(default=False, description="allow more than the limit or 90% of free memory")


class GcFullFault(FaultBase):
    type: Literal["gc.full"]
    target: LocalTarget = Field(
        description="a local process or node, started or adopted, holding a JVM (jcmd <pid> GC.run), or a resolver"
    )
    every: PositiveDuration

    @property
    def local_target(self) -> str:
        return _by_name(self, self.target)


LOCAL_NODE_MODES = ("crash", "stop", "freeze", "isolate")
KUBE_NODE_MODES = ("crash", "drain", "delete")
DRAIN_TIMEOUT_LIMIT = 25.0
"""A drain runs inside one inject, which the engine bounds at 30s (`engine.DRIVER_DEADLINE`)."""


class NodeLossFault(FaultBase):
    type: Literal["node.loss"]
    node: LocalTarget | None = Field(default=None, description="a local node (group of processes), or a resolver")
    nodes: NodeSelection | None = Field(default=None, description="Kubernetes nodes")
    mode: Literal["crash", "stop", "freeze", "isolate", "drain", "delete"] = Field(
        default="crash",
        description="local: crash, stop, freeze, isolate; Kubernetes: crash (cordon + NoExecute taint), "
        "drain (cordon + evictions honouring PDBs), delete (the Node object; recreated on revert)",
    )
    grace: PositiveDuration = Field(default=5.0, description="mode stop: SIGTERM, then SIGKILL after this long")
    drain_timeout: PositiveDuration = Field(
        default=20.0, description=f"mode drain: longest wait for evictions (at most {DRAIN_TIMEOUT_LIMIT:g}s)"
    )
    restore: bool = Field(
        default=True,
        description="bring the node back after `duration`; false leaves recovery to the system under test "
        "(the drill still restores it when it ends)",
    )

    @model_validator(mode="after")
    def _target_and_mode(self) -> NodeLossFault:
        _one_of(self, ("node", "nodes"), None, "node.loss")
        modes = KUBE_NODE_MODES if self.nodes is not None else LOCAL_NODE_MODES
        if self.mode not in modes:
            where = "Kubernetes nodes" if self.nodes is not None else "local nodes"
            raise ValueError(f"mode {self.mode} does not apply to {where}; choose one of {', '.join(modes)}")
        if self.drain_timeout > DRAIN_TIMEOUT_LIMIT:
            raise ValueError(f"drain_timeout is at most {DRAIN_TIMEOUT_LIMIT:g}s (a drain is one inject step)")
        return self

    @property
    def reverts_on_schedule(self) -> bool:
        return self.restore

    @property
    def backend(self) -> Backend:
        return "kubernetes" if self.nodes is not None else "local"

    @property
    def local_target(self) -> str:
        return _by_name(self, self.node)


class PodKillFault(FaultBase):
    type: Literal["pod.kill"]
    pods: PodSelection
    grace_period: NonNegativeDuration | None = Field(
        default=None, description="deletion grace period; 0 kills at once; default: each pod's own"
    )
    duration: PositiveDuration = Field(default=1.0, description="length of the fault window in the report")

    @property
    def backend(self) -> Backend:
        return "kubernetes"


FaultSpec = Annotated[
    LatencyFault
    | BandwidthFault
    | TimeoutFault
    | ResetPeerFault
    | SlowCloseFault
    | SlicerFault
    | LimitDataFault
    | DownFault
    | ClockSkewFault
    | GcPauseFault
    | MemoryPressureFault
    | GcFullFault
    | NodeLossFault
    | PodKillFault,
    Field(discriminator="type"),
]

# --- alerts -------------------------------------------------------------------------------------

MIN_ALERT_POLL = 0.050
AlertName = Annotated[str, Field(pattern=ALERT_NAME_PATTERN, description="the alertname of a Prometheus alerting rule")]


def _matcher(value: str) -> str:
    parse_matcher(value)
    return value


Matcher = Annotated[str, AfterValidator(_matcher), Field(description='label="value", label=~"re", != or !~')]


class AlertNamed(Strict):
    """An alert by name and label matchers, in Alertmanager's syntax: severity="page", team=~"inv.*"."""

    alert: AlertName
    matchers: list[Matcher] = Field(default_factory=list)

    @property
    def selector(self) -> AlertSelector:
        return AlertSelector.of(self.alert, self.matchers)


class AlertRef(AlertNamed):
    pass


class WebhookReceiver(Strict):
    """drillctl's own webhook receiver for the drill: Alertmanager's webhook_configs url names its port."""

    host: str = Field(default="127.0.0.1", description="address to listen on; loopback unless Alertmanager is remote")
    port: Annotated[int, Field(ge=1, le=65535)]


class AlertsConfig(Strict):
    """Where the drill watches alerts (Prometheus) and receives notifications (from Alertmanager)."""

    prometheus: Annotated[str, Field(pattern=r"^https?://[^\s]+$", description="Prometheus base URL")]
    alertmanager: Annotated[str, Field(pattern=r"^https?://[^\s]+$")] | None = Field(
        default=None, description="Alertmanager base URL, checked in preflight; needed by time_to_notify"
    )
    poll_interval: PositiveDuration = Field(
        default=0.25, description="how often Prometheus's alerts are read: part of every alert figure's resolution"
    )
    timeout: PositiveDuration = Field(default=2.0, description="deadline of every call to Prometheus or Alertmanager")
    receiver: WebhookReceiver | None = None
    refuse_while_firing: list[AlertRef] = Field(
        default_factory=list,
        description="preflight refuses to start while one of these fires (no drills in an incident)",
    )

    @field_validator("poll_interval")
    @classmethod
    def _not_too_fast(cls, value: float) -> float:
        if value < MIN_ALERT_POLL:
            raise ValueError(f"must be at least {MIN_ALERT_POLL * 1000:g}ms, got {value * 1000:g}ms")
        return value


# --- phases and SLAs ----------------------------------------------------------------------------

Phase = Literal["baseline", "fault", "recovery"]


class Phases(Strict):
    baseline: PositiveDuration = 5.0
    fault: PositiveDuration | None = Field(
        default=None, description="length of the fault phase; default: until the last fault ends"
    )
    recovery: PositiveDuration = Field(
        default=30.0, description="longest wait after the last revert for every SLA to be decided"
    )


class SlaBase(Strict):
    name: Name
    runbook: RunbookRef | None = None


class RecoveryWindowSla(SlaBase):
    type: Literal["recovery_window"]
    probes: list[Name] | None = Field(default=None, description="default: every probe")
    measured_from: Literal["fault_start", "fault_end"] = Field(default="fault_end", alias="from")
    fault: Name | None = Field(
        default=None, description="default: the first fault to start (fault_start) or the last to end (fault_end)"
    )
    max: PositiveDuration
    stable_for: PositiveDuration = 1.0


class ErrorRateSla(SlaBase):
    type: Literal["error_rate"]
    probes: list[Name] | None = None
    phase: Phase
    max: Annotated[float, Field(ge=0.0, le=1.0, description="share of failed samples, 0.05 = 5%")]


class PercentileSla(SlaBase):
    p50: PositiveDuration | None = None
    p90: PositiveDuration | None = None
    p99: PositiveDuration | None = None
    max: PositiveDuration | None = None

    def thresholds(self) -> dict[str, float]:
        limits = {"p50": self.p50, "p90": self.p90, "p99": self.p99, "max": self.max}
        return {k: v for k, v in limits.items() if v is not None}


class LatencySla(PercentileSla):
    type: Literal["latency"]
    probe: Name
    phase: Phase


class WorkloadLatencySla(PercentileSla):
    """Latency of the workload's operations from their intended start (open loop), per phase."""

    type: Literal["workload_latency"]
    phase: Phase
    operation: OperationKind | None = Field(default=None, description="read or write; default: both")


class DataLossSla(SlaBase):
    """Acknowledged writes missing when every key written is read back after recovery."""

    type: Literal["data_loss"]
    max: Annotated[int, Field(ge=0)] = Field(default=0, description="most acknowledged writes that may be lost")


class RpoSla(SlaBase):
    """The time span of lost acknowledged writes (0 when none is lost)."""

    type: Literal["rpo"]
    max: NonNegativeDuration


class AlertSlaBase(SlaBase, AlertNamed):
    pass


class MeasuredAlertSla(AlertSlaBase):
    fault: Name | None = Field(default=None, description="default: the first fault that had a measured impact")
    max: PositiveDuration


class TimeToDetectSla(MeasuredAlertSla):
    """The alert is firing within `max` of the fault's measured impact."""

    type: Literal["time_to_detect"]


class TimeToNotifySla(MeasuredAlertSla):
    """Alertmanager's notification of the alert reached the drill's receiver within `max` of the impact."""

    type: Literal["time_to_notify"]


class AlertClearsSla(MeasuredAlertSla):
    """The alert resolves within `max` of the measured recovery."""

    type: Literal["alert_clears"]


class NoAlertSla(AlertSlaBase):
    """The alert never fires during the drill: a fault the system absorbs must not page anyone."""

    type: Literal["no_alert"]


AlertSla = TimeToDetectSla | TimeToNotifySla | AlertClearsSla | NoAlertSla
SlaSpec = Annotated[
    RecoveryWindowSla | ErrorRateSla | LatencySla | WorkloadLatencySla | DataLossSla | RpoSla | AlertSla,
    Field(discriminator="type"),
]
WORKLOAD_SLAS = (WorkloadLatencySla, DataLossSla, RpoSla)

# --- stop conditions ----------------------------------------------------------------------------


def _from_the_faults_on() -> list[Phase]:
    return ["fault", "recovery"]


class StopConditionBase(Strict):
    """Checked as each sample of `probe` lands; when one trips, every fault is reverted at once."""

    name: Name
    probe: Name
    phases: Annotated[list[Phase], Field(min_length=1)] = Field(
        default_factory=_from_the_faults_on, description="phases whose samples count; default: fault and recovery"
    )


class ErrorRateStop(StopConditionBase):
    type: Literal["error_rate"]
    max: Annotated[float, Field(ge=0.0, lt=1.0, description="trips when the share of failed samples is above this")]
    window: PositiveDuration = Field(description="sliding window of samples the share is taken over")


class ProbeFailingStop(StopConditionBase):
    type: Literal["probe_failing"]
    consecutive: Annotated[int, Field(ge=1, le=100000)] = Field(
        default=3, description="trips after this many failed samples in a row"
    )


class AlertFiringStop(AlertNamed):
    """Trips when the alert fires (a real customer-impact alert, say), judged at every poll of Prometheus."""

    type: Literal["alert_firing"]
    name: Name
    phases: Annotated[list[Phase], Field(min_length=1)] = Field(
        default_factory=_from_the_faults_on, description="phases it counts in; default: fault and recovery"
    )


SampleStop = ErrorRateStop | ProbeFailingStop
StopConditionSpec = Annotated[SampleStop | AlertFiringStop, Field(discriminator="type")]

# --- the drill ----------------------------------------------------------------------------------


class Metadata(Strict):
    name: Name
    description: str = ""
    runbook: RunbookRef | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class DrillBody(Strict):
    seed: int | None = None
    toxiproxy: ToxiproxyConfig = Field(default_factory=ToxiproxyConfig)
    targets: Targets = Field(default_factory=Targets)
    proxies: list[ProxySpec] = Field(default_factory=list)
    steady_state: SteadyState
    phases: Phases = Field(default_factory=Phases)
    faults: list[FaultSpec] = Field(default_factory=list)
    slas: list[SlaSpec] = Field(default_factory=list)
    stop_conditions: list[StopConditionSpec] = Field(default_factory=list)
    workload: WorkloadSpec | None = Field(
        default=None, description="operations sent through every phase, checked for lost writes afterwards"
    )
    alerts: AlertsConfig | None = None


class DrillSpec(Strict):
    api_version: Literal["drillctl.dev/v1"] = Field(alias="apiVersion")
    kind: Literal["Drill"]
    metadata: Metadata
    spec: DrillBody

    @property
    def name(self) -> str:
        return self.metadata.name

    def fault_phase_length(self) -> float:
        if self.spec.phases.fault is not None:
            return self.spec.phases.fault
        return max((f.start + f.duration for f in self.spec.faults), default=0.0)
