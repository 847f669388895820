"""The workload spec: operations a drill sends to the system under test while it runs, and how they are checked.

Data only. The client named by `client.type` is resolved when the drill is loaded (`workloads/registry.py`),
so a client that is not installed is a spec error, with its file, line and field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from orchestrator.model.base import Strict
from orchestrator.model.durations import NonNegativeDuration, PositiveDuration

OperationKind = Literal["read", "write"]
MAX_RATE = 100_000.0
Rate = Annotated[float, Field(gt=0.0, le=MAX_RATE, description="operations per second")]


class Ramp(Strict):
    """From `from` operations/s at the workload's start to `rate`, linearly over `duration`."""

    duration: PositiveDuration
    start_rate: Annotated[float, Field(ge=0.0, le=MAX_RATE)] = Field(default=0.0, alias="from")


class Burst(Strict):
    """`rate` operations/s for `duration`, from `start` after the workload's start (the baseline's start)."""

    start: NonNegativeDuration
    duration: PositiveDuration
    rate: Rate


class Verification(Strict):
    """After the recovery phase, every key written is read back, `concurrency` keys at a time."""

    timeout: PositiveDuration = Field(default=30.0, description="longest the whole read-back may take")
    concurrency: Annotated[int, Field(ge=1, le=1000)] = 16
    attempts: Annotated[int, Field(ge=1, le=10)] = Field(default=3, description="reads of one key before giving up")


class WorkloadSpec(Strict):
    rate: Rate
    ramp: Ramp | None = None
    bursts: list[Burst] = Field(default_factory=list)
    keys: Annotated[int, Field(ge=1, le=10_000_000)] = Field(default=100, description="size of the key space")
    key_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9_./:-]{0,64}$")] | None = Field(
        default=None, description="prefix of every key; default drill-<run id>/, so runs never share keys"
    )
    reads: Annotated[float, Field(ge=0.0, le=1.0)] = Field(default=0.5, description="share of operations that read")
    timeout: PositiveDuration = Field(default=1.0, description="longest one operation may take")
    max_in_flight: Annotated[int, Field(ge=1, le=100_000)] | None = Field(
        default=None, description="operations running at once; default: the highest rate times the timeout"
    )
    client: dict[str, Any] = Field(description="type: http, command, or a drillctl.workloads entry point; its options")
    verify: Verification = Field(default_factory=Verification)

    @field_validator("client")
    @classmethod
    def _typed(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(value.get("type"), str) or not value["type"]:
            raise ValueError("needs `type`: http, command, or the name of a drillctl.workloads entry point")
        return value

    def peak_rate(self) -> float:
        return max([self.rate, *(b.rate for b in self.bursts)])

    def in_flight_limit(self) -> int:
        return self.max_in_flight or min(100_000, int(self.peak_rate() * self.timeout) + 1)


def default_key_prefix(run_id: str) -> str:
    return f"drill-{run_id}/"
