"""The drill spec v1: frozen, typed, and strict (unknown keys are errors).

Only shape and single-field rules live here; rules that relate fields across the
drill (a fault naming a declared proxy, a fault inside its phase) are in `loading`.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from orchestrator.model.durations import NonNegativeDuration, PositiveDuration, SignedDuration
from orchestrator.model.sizes import ByteSize, MemorySize

API_VERSION = "drillctl.dev/v1"
MIN_INTERVAL = 0.010
NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
RUNBOOK_PATTERN = r"^runbooks/[A-Za-z0-9_./-]+\.md#[A-Za-z0-9_-]+$"

Name = Annotated[str, Field(pattern=NAME_PATTERN, description="lowercase letters, digits and dashes")]
RunbookRef = Annotated[
    str,
    Field(pattern=RUNBOOK_PATTERN, description="runbooks/<file>.md#<anchor>, resolved from the drill's folder up"),
]
Toxicity = Annotated[float, Field(ge=0.0, le=1.0, description="share of connections the toxic applies to")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=True)


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
    argv: Annotated[list[str], Field(min_length=1)]
    expect_exit: int = 0
    output_match: str | None = Field(default=None, description="regular expression stdout must contain")
    timeout: PositiveDuration = 5.0

    @field_validator("output_match")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        return _check_regex(value)


ProbeSpec = Annotated[HttpProbe | TcpProbe | CommandProbe, Field(discriminator="type")]


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


class LocalTargets(Strict):
    processes: list[LocalProcess] = Field(default_factory=list)
    nodes: list[NodeSpec] = Field(default_factory=list)


class Targets(Strict):
    local: LocalTargets = Field(default_factory=LocalTargets)


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


class FaultBase(Strict):
    name: Name
    start: NonNegativeDuration = Field(default=0.0, description="offset from the start of the fault phase")
    duration: PositiveDuration
    runbook: RunbookRef | None = None

    @property
    def reverts_on_schedule(self) -> bool:
        """False for a fault left in place after its duration; the final rollback still reverts it."""
        return True


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


class ClockSkewFault(FaultBase):
    type: Literal["clock.skew"]
    target: Name = Field(description="a local process started with clock: faketime")
    offset: SignedDuration = Field(description="shift of its wall clock, e.g. +90s or -5m")
    drift: Annotated[float, Field(gt=0)] | None = Field(
        default=None, description="clock rate while skewed, e.g. 1.01 runs 1% fast; default 1 (no drift)"
    )


class GcPauseFault(FaultBase):
    type: Literal["gc.pause"]
    target: Name = Field(description="a local process or node; all its processes freeze together")
    pause: PositiveDuration
    every: PositiveDuration
    jitter: NonNegativeDuration = Field(default=0.0, description="each period varies by up to this much")


class MemoryPressureFault(FaultBase):
    type: Literal["memory.pressure"]
    target: Name = Field(description="a local process; inside its cgroup when it has a memory_limit")
    size: MemorySize
    ramp: NonNegativeDuration = Field(default=0.0, description="reach `size` gradually over this long")
    force: bool = Field(default=False, description="allow more than the limit or 90% of free memory")


class GcFullFault(FaultBase):
    type: Literal["gc.full"]
    target: Name = Field(description="a local JVM process (jcmd <pid> GC.run)")
    every: PositiveDuration


class NodeLossFault(FaultBase):
    type: Literal["node.loss"]
    node: Name
    mode: Literal["crash", "stop", "freeze", "isolate"] = "crash"
    grace: PositiveDuration = Field(default=5.0, description="mode stop: SIGTERM, then SIGKILL after this long")
    restore: bool = Field(
        default=True,
        description="bring the node back after `duration`; false leaves recovery to the system under test "
        "(the drill still restores it when it ends)",
    )

    @property
    def reverts_on_schedule(self) -> bool:
        return self.restore


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
    | NodeLossFault,
    Field(discriminator="type"),
]

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


class LatencySla(SlaBase):
    type: Literal["latency"]
    probe: Name
    phase: Phase
    p50: PositiveDuration | None = None
    p90: PositiveDuration | None = None
    p99: PositiveDuration | None = None
    max: PositiveDuration | None = None

    def thresholds(self) -> dict[str, float]:
        limits = {"p50": self.p50, "p90": self.p90, "p99": self.p99, "max": self.max}
        return {k: v for k, v in limits.items() if v is not None}


SlaSpec = Annotated[RecoveryWindowSla | ErrorRateSla | LatencySla, Field(discriminator="type")]

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
