"""Builds a probe from its spec: the one place that knows every probe type."""

from __future__ import annotations

from orchestrator.model.spec import CommandProbe as CommandSpec
from orchestrator.model.spec import HttpProbe as HttpSpec
from orchestrator.model.spec import ProbeSpec
from orchestrator.probes.base import Probe
from orchestrator.probes.command import CommandProbe
from orchestrator.probes.http import HttpProbe
from orchestrator.probes.tcp import TcpProbe


def build_probe(spec: ProbeSpec, max_in_flight: int) -> Probe:
    if isinstance(spec, HttpSpec):
        return HttpProbe(spec, max_in_flight)
    if isinstance(spec, CommandSpec):
        return CommandProbe(spec)
    return TcpProbe(spec)
