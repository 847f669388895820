"""The fault driver interface.

`prepare` is read-only and returns an Undo: plain data, journaled before `inject` touches
anything. `revert` needs only that record (so it also works from a journal after a crash)
and is idempotent (so it is safe after a half-done inject, or twice).

What a revert found (a node that vanished, a value someone changed meanwhile and that was kept)
belongs in the report, not only in the log: `revert` may return notes. What a fault touched (the
chosen nodes or pods, the seed that chose them) is read from its record by an optional
`touched(undo)` (`ReportsTouched`), so drivers that have nothing to say need not change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

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

    async def revert(self, undo: Undo) -> Sequence[str] | None:
        """Undo the fault from the record alone; succeed if there is nothing left to undo.

        Notes on what it found and did go into the report; None (or nothing) when there is nothing to say."""

    def describe(self, spec: SpecT) -> str:
        """One line for plans and reports: what this fault will touch."""


@dataclass(frozen=True)
class Touched:
    """What a fault touched, from its undo record: objects (`node/kwok-node-1`, `pod/<ns>/<name>`) and the seed
    that chose them, so a report says what was hit and a replay can hit the same."""

    targets: tuple[str, ...] = ()
    seed: int | None = None


@runtime_checkable
class ReportsTouched(Protocol):
    """Optional beside FaultDriver: drivers whose targets are chosen at run time say which, from the record."""

    def touched(self, undo: Undo) -> Touched: ...


def touched(driver: FaultDriver[Any], undo: Undo) -> Touched:
    """What the driver says its fault touched; nothing for drivers without `touched` (their params say it)."""
    return driver.touched(undo) if isinstance(driver, ReportsTouched) else Touched()


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
