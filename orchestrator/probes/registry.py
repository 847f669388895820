"""Builds a probe from its spec: the one place that knows every probe type."""

from __future__ import annotations

from pathlib import Path

from orchestrator.kube.access import KubeAccess
from orchestrator.model.spec import CommandProbe as CommandSpec
from orchestrator.model.spec import HttpProbe as HttpSpec
from orchestrator.model.spec import NodeReadyProbe, PodsReadyProbe, ProbeSpec, WorkloadAvailableProbe
from orchestrator.model.spec import PrometheusProbe as PrometheusSpec
from orchestrator.probes.base import Probe
from orchestrator.probes.command import CommandProbe
from orchestrator.probes.http import HttpProbe
from orchestrator.probes.kubernetes import KubernetesProbe
from orchestrator.probes.prometheus import PrometheusProbe
from orchestrator.probes.tcp import TcpProbe


def build_probe(spec: ProbeSpec, max_in_flight: int, folder: Path, kube: KubeAccess | None = None) -> Probe:
    """`folder`: the drill file's, where a command probe runs; `kube`: how probes of the cluster reach it (the
    run's --kubeconfig/--context)."""
    if isinstance(spec, HttpSpec):
        return HttpProbe(spec, max_in_flight)
    if isinstance(spec, CommandSpec):
        return CommandProbe(spec, folder)
    if isinstance(spec, WorkloadAvailableProbe | PodsReadyProbe | NodeReadyProbe):
        return KubernetesProbe(spec, kube or KubeAccess())
    if isinstance(spec, PrometheusSpec):
        return PrometheusProbe(spec, max_in_flight)
    return TcpProbe(spec)
