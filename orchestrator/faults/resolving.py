"""A local driver whose fault may name its target by a resolver (`orchestrator/resolvers.py`).

It wraps the driver of every local fault on a process or node (node.loss, gc.pause, memory.pressure,
clock.skew, gc.full) and changes nothing for a fault that names its target outright. For one given by
a resolver, `prepare` asks the resolver first (under its deadline), checks the chosen target with the
driver's own preflight and prepares the fault on it; what the resolver answered, when and how long it
took go into the undo record (`resolved`), so `inject` and the report read the same target, and
`touched` says it. Reverts need only the record, as the wrapped driver's do. After setup, the engine
calls `check_targets` once, so a resolver that cannot answer fails the run in preflight (exit 3),
before the baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from orchestrator.errors import DrillError, PreflightError
from orchestrator.faults.base import DriverRegistry, FaultDriver, Touched, touched
from orchestrator.kube.access import KubeAccess
from orchestrator.model.resolution import Resolution
from orchestrator.model.spec import FaultSpec, MemoryPressureFault, NodeLossFault, TargetResolver
from orchestrator.model.undo import Undo
from orchestrator.resolvers import Wanted, describe, resolve
from orchestrator.targets.local import LocalFleet


def resolver_of(spec: FaultSpec) -> TargetResolver | None:
    target = spec.node if isinstance(spec, NodeLossFault) else getattr(spec, "target", None)
    return target if isinstance(target, TargetResolver) else None


def named(spec: FaultSpec, target: str) -> Any:
    """The fault with its resolver replaced by the name it resolved to."""
    field = "node" if isinstance(spec, NodeLossFault) else "target"
    return spec.model_copy(update={field: target})


def wanted(spec: FaultSpec) -> Wanted:
    if isinstance(spec, NodeLossFault):
        return "node"
    return "process" if isinstance(spec, MemoryPressureFault) else "either"


class ResolvingDriver:
    def __init__(self, inner: FaultDriver[Any], fleet: LocalFleet, kube: KubeAccess | None) -> None:
        self.name = inner.name
        self._inner = inner
        self._fleet = fleet
        self._kube = kube

    async def resolution(self, spec: FaultSpec) -> Resolution:
        """Ask the fault's resolver now; read-only (plan --resolve, check_targets, prepare)."""
        resolver = resolver_of(spec)
        assert resolver is not None
        return await resolve(resolver, self._fleet, wanted(spec), self._fleet.folder, self._kube)

    async def preflight(self, spec: FaultSpec) -> None:
        """A resolved target is checked once the system runs (`check_targets`): its answer may depend on it."""
        if resolver_of(spec) is None:
            await self._inner.preflight(spec)

    async def check_targets(self, spec: FaultSpec) -> None:
        if resolver_of(spec) is None:
            return
        try:
            resolved = await self.resolution(spec)
            await self._inner.preflight(named(spec, resolved.target))
        except DrillError as e:
            raise PreflightError(f"fault {spec.name}: {e}") from e

    async def prepare(self, spec: FaultSpec, step_id: str) -> Undo:
        if resolver_of(spec) is None:
            return await self._inner.prepare(spec, step_id)
        resolved = await self.resolution(spec)
        target = named(spec, resolved.target)
        await self._inner.preflight(target)
        undo = await self._inner.prepare(target, step_id)
        return replace(undo, state={**undo.state, "resolved": resolved.to_json()})

    async def inject(self, spec: FaultSpec, undo: Undo) -> None:
        if "resolved" in undo.state:
            spec = named(spec, undo.state["resolved"]["target"])
        await self._inner.inject(spec, undo)

    async def revert(self, undo: Undo) -> Sequence[str] | None:
        return await self._inner.revert(undo)

    def describe(self, spec: FaultSpec) -> str:
        resolver = resolver_of(spec)
        if resolver is None:
            return self._inner.describe(spec)
        placeholder = f"<{describe(resolver)}>"
        try:
            return f"{self._inner.describe(named(spec, placeholder))}; the target is asked at injection"
        except DrillError:
            return f"{spec.type} on the target named at injection by {describe(resolver)}"

    def touched(self, undo: Undo) -> Touched:
        found = touched(self._inner, undo)
        if "resolved" not in undo.state:
            return found
        line = Resolution.from_json(undo.state["resolved"]).line()
        return Touched((line, *found.targets), found.seed)


async def plan_resolvers(registry: DriverRegistry, faults: Sequence[FaultSpec], ask: bool) -> list[dict[str, Any]]:
    """What `drillctl plan` shows of each resolver; with `ask`, what it picks now (read-only) or why it cannot."""
    out = []
    for spec in faults:
        resolver, driver = resolver_of(spec), registry.for_fault(spec)
        if resolver is None or not isinstance(driver, ResolvingDriver):
            continue
        entry: dict[str, Any] = {"fault": spec.name, "resolver": describe(resolver), "timeout": resolver.timeout}
        if ask:
            try:
                entry["picked"] = (await driver.resolution(spec)).to_json()
            except DrillError as e:
                entry["error"] = str(e)
        out.append(entry)
    return out


def plan_lines(adopted: Sequence[dict[str, Any]], resolvers: Sequence[dict[str, Any]]) -> list[str]:
    """The plan's text for adopted processes and resolvers (from the same data as its JSON)."""
    lines = []
    for a in adopted:
        found = next(f"{k} {a[k]}" for k in ("pidfile", "port", "cmdline") if k in a)
        back = f"restarted with {' '.join(a['restart'])}" if a.get("restart") else "never restarted (restore: false)"
        lines.append(f"adopted process {a['name']}: found by {found} when a fault needs it; after a node loss {back}")
    for r in resolvers:
        lines.append(f"fault {r['fault']}: target asked at injection of {r['resolver']} (within {r['timeout']:g}s)")
        if "picked" in r:
            picked = r["picked"]
            lines.append(f"  would pick {picked['target']} now (answer {picked['answer']!r}, {picked['elapsed']:.3f}s)")
        elif "error" in r:
            lines.append(f"  REFUSED: {r['error']}")
    return lines
