"""The freeze of a cluster: a ConfigMap `drillctl-freeze` beside the game days' Lease (same namespace).

A ConfigMap because the chart's ServiceAccount can be given read access to that one object by name (get, and
list/watch with a `metadata.name` field selector), nothing else; the one who freezes writes it with their own
credentials. Its data holds the freeze (reason, since, by). It exists: the cluster is frozen; `drillctl unfreeze
--cluster` deletes it. A ConfigMap of that name whose data is no freeze still freezes (a brake that cannot be
read must not release). Game days and lone runs of Kubernetes drills read it before they start and watch it
while they run (`freeze_watch.py`).
"""

from __future__ import annotations

from typing import Any

from kubernetes import client

from orchestrator.errors import BackendError
from orchestrator.kube.access import KubeConnection, status_of
from orchestrator.model.freeze import Freeze

FREEZE_CONFIGMAP = "drillctl-freeze"
FIELD_MANAGER = "drillctl-freeze"


def freeze_of(configmap: Any, where: str) -> Freeze:
    """The freeze a ConfigMap (as JSON) holds; one whose data is no freeze is a freeze saying so."""
    data = configmap.get("data") if isinstance(configmap, dict) else None
    try:
        return Freeze.from_json(data)
    except ValueError as e:
        metadata = configmap.get("metadata") if isinstance(configmap, dict) else None
        created = metadata.get("creationTimestamp") if isinstance(metadata, dict) else None
        fallback = {"since": created if isinstance(created, str) else "1970-01-01T00:00:00+00:00", "by": "unknown"}
        return Freeze.from_json({**fallback, "reason": f"{where} is not a drillctl freeze ({e}); it still freezes"})


class ClusterFreeze:
    """The freeze ConfigMap of one namespace; every call under the connection's deadline."""

    def __init__(self, connection: KubeConnection, namespace: str) -> None:
        self.connection = connection
        self.namespace = namespace
        self.api = client.CoreV1Api(connection.api)

    @property
    def where(self) -> str:
        return f"configmap {self.namespace}/{FREEZE_CONFIGMAP} at {self.connection.server}"

    async def read(self) -> Freeze | None:
        try:
            found = await self.connection.call_json(
                self.api.read_namespaced_config_map, FREEZE_CONFIGMAP, self.namespace
            )
        except BackendError as e:
            if status_of(e) == 404:
                return None
            raise
        return freeze_of(found, self.where)

    async def write(self, wanted: Freeze) -> tuple[Freeze, bool]:
        """Create the freeze unless one exists (then it is kept); returns the freeze that holds and whether it
        was there already."""
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": FREEZE_CONFIGMAP, "labels": {"app.kubernetes.io/managed-by": "drillctl"}},
            "data": wanted.to_json(),
        }
        for _ in range(2):  # a second try only if an unfreeze deleted the one we found in between
            try:
                await self.connection.call(
                    self.api.create_namespaced_config_map, self.namespace, body, field_manager=FIELD_MANAGER
                )
                return wanted, False
            except BackendError as e:
                if status_of(e) != 409:
                    raise
            if (held := await self.read()) is not None:
                return held, True
        raise BackendError(f"{self.where} keeps appearing and vanishing: someone freezes and unfreezes it")

    async def clear(self) -> Freeze | None:
        """Delete the freeze; returns the one it cleared (None: there was none)."""
        held = await self.read()
        if held is None:
            return None
        try:
            await self.connection.call(self.api.delete_namespaced_config_map, FREEZE_CONFIGMAP, self.namespace)
        except BackendError as e:
            if status_of(e) == 404:
                return None
            raise
        return held
