"""The workload client interface: one async `invoke` per operation, answering ok, fail or unknown.

A client for a new system (a database, a message stream) is a class with `invoke` and `close`, and a
`ClientType` naming its options model and how to build it, offered as an entry point of the group
`drillctl.workloads` (docs/workload.md). The generator and the verification step are the only callers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from orchestrator.model.operations import Operation

Outcome = Literal["ok", "fail", "unknown"]


@dataclass(frozen=True, slots=True)
class Result:
    """What one operation came to.

    `ok`: acknowledged (a write took effect, a read answered). `fail`: known not to have taken effect (a
    refused connection, an answer that says so). `unknown`: it may have (a timeout after sending, a dropped
    connection): a write then is neither counted lost nor wrongly present. `values`: what a read found, one
    value for a register, several for a key that holds more, none for a key that holds nothing.
    """

    outcome: Outcome
    values: tuple[str, ...] = ()
    error: str | None = None


class WorkloadClient(Protocol):
    async def invoke(self, operation: Operation) -> Result:
        """Perform one read or write within the client's timeout; failures come back as results, not raised."""
        ...

    async def close(self) -> None:
        """Release connections and child processes."""
        ...


@dataclass(frozen=True)
class ClientContext:
    """What every client may need from the drill around it."""

    folder: Path
    """The drill file's folder: relative paths in options are resolved from it."""
    timeout: float
    """The workload's timeout of one operation."""
    max_in_flight: int
    """Most operations at once: a connection pool needs no more."""


class ClientType(Protocol):
    """What a `drillctl.workloads` entry point (and each built-in client) names."""

    options: type[BaseModel]
    """The client's options: the `client` mapping of the workload without its `type`, checked when the drill loads."""

    def build(self, options: Any, context: ClientContext) -> WorkloadClient: ...
