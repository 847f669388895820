"""The probe interface and the registry that builds probes from their specs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Observation:
    ok: bool
    latency: float
    error: str | None = None


class Probe(Protocol):
    name: str
    timeout: float

    async def observe(self) -> Observation:
        """One look at the target, within `timeout`; failures come back as ok=False."""

    async def close(self) -> None:
        """Release connections and child processes."""
