"""Which driver handles which fault type. A new fault family adds entries here, not engine code."""

from __future__ import annotations

from typing import Any

from orchestrator.faults.base import DriverRegistry, FaultDriver
from orchestrator.faults.clock import ClockSkewDriver
from orchestrator.faults.jvm import GcFullDriver
from orchestrator.faults.kube_clock import KubeClockSkewDriver
from orchestrator.faults.kube_node import KubeNodeLossDriver
from orchestrator.faults.kube_pod import KubePodKillDriver
from orchestrator.faults.kube_pod_faults import KubeGcPauseDriver, KubeMemoryPressureDriver
from orchestrator.faults.network import ProxyDownDriver, ToxicDriver
from orchestrator.faults.pressure import MemoryPressureDriver
from orchestrator.faults.process import GcPauseDriver, NodeLossDriver
from orchestrator.faults.resolving import ResolvingDriver
from orchestrator.kube.access import KubeAccess
from orchestrator.targets.local import LocalFleet
from orchestrator.toxiproxy_client import ToxiproxyClient

TOXIC_FAULTS = (
    "network.latency",
    "network.bandwidth",
    "network.timeout",
    "network.reset_peer",
    "network.slow_close",
    "network.slicer",
    "network.limit_data",
)


def build_registry(
    toxiproxy: ToxiproxyClient, fleet: LocalFleet, seed: int | None = None, kube: KubeAccess | None = None
) -> DriverRegistry:
    """`kube` is how drivers reach the cluster for new faults; reverts reach it from their undo records.

    Every local fault on a process or node may name it by a resolver, so each is wrapped in a ResolvingDriver
    (`faults/resolving.py`)."""
    toxic = ToxicDriver(toxiproxy)
    drivers: dict[str, FaultDriver[Any]] = {kind: toxic for kind in TOXIC_FAULTS}
    drivers["network.down"] = ProxyDownDriver(toxiproxy)
    drivers["memory.pressure"] = ResolvingDriver(MemoryPressureDriver(fleet), fleet, kube)
    drivers["gc.full"] = ResolvingDriver(GcFullDriver(fleet), fleet, kube)
    drivers["gc.pause"] = ResolvingDriver(GcPauseDriver(fleet, seed), fleet, kube)
    drivers["node.loss"] = ResolvingDriver(NodeLossDriver(fleet, toxiproxy), fleet, kube)
    drivers["clock.skew"] = ResolvingDriver(ClockSkewDriver(fleet), fleet, kube)
    drivers["node.loss@kubernetes"] = KubeNodeLossDriver(kube, seed)
    drivers["pod.kill@kubernetes"] = KubePodKillDriver(kube, seed)
    drivers["clock.skew@kubernetes"] = KubeClockSkewDriver(kube, seed)
    drivers["gc.pause@kubernetes"] = KubeGcPauseDriver(kube, seed)
    drivers["memory.pressure@kubernetes"] = KubeMemoryPressureDriver(kube, seed)
    return DriverRegistry(drivers)
