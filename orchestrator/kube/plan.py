"""What `drillctl plan` shows of a Kubernetes fault: the exact objects a run would touch now, and why
it would be refused. Drivers that can resolve their targets offer `async def plan(spec) -> FaultPlan`
(looked up with getattr, so the `FaultDriver` protocol stays as it is).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import DrillError
from orchestrator.faults.base import DriverRegistry
from orchestrator.model.spec import FaultSpec

PLAN_DEADLINE = 30.0


@dataclass(frozen=True)
class FaultPlan:
    fault: str
    context: str | None
    namespace: str | None
    seed: int | None
    touches: tuple[str, ...] = ()
    """The objects the fault changes, e.g. `node kwok-node-1 (cordon + NoExecute taint)`."""
    effects: tuple[str, ...] = ()
    """What follows from it, e.g. the pods a node loss evicts."""
    refusals: tuple[str, ...] = ()
    """Why a run would stop in preflight (exit 3); empty when it would go ahead."""

    def to_json(self) -> dict[str, Any]:
        return {
            "fault": self.fault,
            "context": self.context,
            "namespace": self.namespace,
            "seed": self.seed,
            "touches": list(self.touches),
            "effects": list(self.effects),
            "refusals": list(self.refusals),
        }

    def lines(self) -> list[str]:
        head = f"{self.fault}: context {self.context or '?'}, namespace {self.namespace or '?'}, seed {self.seed}"
        return [
            head,
            *(f"  touches {t}" for t in self.touches),
            *(f"  then {e}" for e in self.effects),
            *(f"  REFUSED: {r}" for r in self.refusals),
        ]


async def plan_faults(registry: DriverRegistry, faults: Sequence[FaultSpec]) -> list[FaultPlan]:
    """Resolve every fault whose driver can; read-only. A resolution error is a refusal, not a crash."""
    plans = []
    for fault in faults:
        plan = getattr(registry.for_fault(fault), "plan", None)
        if plan is None:
            continue
        try:
            resolved: FaultPlan = await asyncio.wait_for(plan(fault), PLAN_DEADLINE)
            plans.append(resolved)
        except (DrillError, TimeoutError) as e:
            plans.append(FaultPlan(fault.name, None, None, None, refusals=(str(e) or "no answer in time",)))
    return plans
