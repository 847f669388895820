"""The fault driver interface.

`prepare` is read-only and returns an Undo: plain data, journaled before `inject` touches
anything. `revert` needs only that record (so it also works from a journal after a crash)
and is idempotent (so it is safe after a half-done inject, or twice).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from orchestrator.model.spec import FaultBase, FaultSpec
from orchestrator.model.undo import Undo

SpecT = TypeVar("SpecT", bound=FaultBase, contravariant=True)


class FaultDriver(Protocol[SpecT]):
    name: str
    """Key of the driver in the registry; journaled in every Undo so a revert finds its driver."""

    async def preflight(self, spec: SpecT) -> None:
        """Check the backend and target are usable; raise PreflightError. Touches nothing."""

    async def prepare(self, spec: SpecT, step_id: str) -> Undo:
        """Resolve the target and capture what revert needs. Read-only."""

    async def inject(self, spec: SpecT, undo: Undo) -> None: ...

    async def revert(self, undo: Undo) -> None:
        """Undo the fault from the record alone; succeed if there is nothing left to undo."""

    def describe(self, spec: SpecT) -> str:
        """One line for plans and reports: what this fault will touch."""


def driver_key(spec: FaultSpec) -> str:
    """Registry key: the fault type, qualified by its backend when that is not local (`node.loss@kubernetes`)."""
    return spec.type if spec.backend == "local" else f"{spec.type}@{spec.backend}"


@dataclass(frozen=True)
class DriverRegistry:
    """Explicit map from fault type to driver; a new fault type is a new entry, not an engine change."""

    by_fault_type: Mapping[str, FaultDriver[Any]]

    def for_fault(self, spec: FaultSpec) -> FaultDriver[Any]:
        return self.by_fault_type[driver_key(spec)]

    def for_undo(self, undo: Undo) -> FaultDriver[Any]:
        for driver in self.by_fault_type.values():
            if driver.name == undo.driver:
                return driver
        raise KeyError(f"no driver named {undo.driver!r} for step {undo.step_id}")
