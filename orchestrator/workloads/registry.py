"""Workload clients by type: `http` and `command` built in, any other from the entry point group `drillctl.workloads`.

Resolved when a drill is loaded, so a client that is not installed, or options it refuses, are spec errors
naming the file, line and field; the entry points are only scanned for a type that is not built in.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, cast

from pydantic import BaseModel

from orchestrator.model.workload import WorkloadSpec
from orchestrator.model.workload_clients import BUILT_IN_OPTIONS
from orchestrator.workloads.base import ClientContext, ClientType, WorkloadClient

GROUP = "drillctl.workloads"
BUILT_IN = {
    "http": "orchestrator.workloads.http",
    "command": "orchestrator.workloads.command",
    "postgres": "orchestrator.workloads.postgres",
    "nats": "orchestrator.workloads.jetstream",
}


class UnknownClient(Exception):
    """No client of that type is built in or installed, or its entry point does not load."""


def client_type(name: str) -> ClientType:
    if name in BUILT_IN:
        return cast(ClientType, importlib.import_module(BUILT_IN[name]).CLIENT)
    found = entry_points(group=GROUP, name=name)
    if not found:
        raise UnknownClient(
            f"no workload client {name!r}: not built in ({', '.join(BUILT_IN)}) and no installed package "
            f"offers an entry point {name!r} in the group {GROUP}"
        )
    point = next(iter(found))
    try:
        loaded = point.load()
    except Exception as e:  # a broken plugin is the drill's problem to report, not a crash
        raise UnknownClient(f"workload client {name!r} ({point.value}) cannot be loaded: {e!r}") from e
    if not isinstance(getattr(loaded, "options", None), type) or not callable(getattr(loaded, "build", None)):
        raise UnknownClient(f"workload client {name!r} ({point.value}) has no `options` model and `build` method")
    return cast(ClientType, loaded)


def options_of(client: dict[str, Any]) -> BaseModel:
    """The client's options checked by its own model (pydantic ValidationError when they do not fit); a built-in
    client's without importing the client."""
    name = client["type"]
    model = BUILT_IN_OPTIONS[name] if name in BUILT_IN else client_type(name).options
    return model.model_validate({k: v for k, v in client.items() if k != "type"})


def build_client(spec: WorkloadSpec, folder: Path) -> WorkloadClient:
    context = ClientContext(folder=folder, timeout=spec.timeout, max_in_flight=spec.in_flight_limit())
    return client_type(spec.client["type"]).build(options_of(spec.client), context)
