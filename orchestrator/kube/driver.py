"""What every Kubernetes fault driver shares: how it reaches the cluster, its seed, and the order in which
it judges a fault before touching anything.

A driver's `_resolve(spec)` is read-only: it connects, chooses its targets with the drill's seed and
collects every refusal (protected context, namespaces, RBAC, blast radius, ...). `preflight`, `plan`
and `prepare` all start from it, so a plan shows exactly what a run would do, or why it would stop.
Drivers stay separate modules that import only this package, never each other.
"""

from __future__ import annotations

import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

import structlog

from orchestrator.errors import PreflightError
from orchestrator.kube.access import KubeAccess, KubeConnection, connect
from orchestrator.kube.safety import (
    Permission,
    namespace_refusal,
    permission_refusal,
    protected_refusal,
    radius_refusal,
)
from orchestrator.kube.selection import Chosen, choose_nodes, choose_pods
from orchestrator.model.spec import NodeSelection, PodSelection


class Resolved(Protocol):
    @property
    def refusals(self) -> Sequence[str]: ...


ResolutionT = TypeVar("ResolutionT", bound=Resolved)


class KubeDriver(ABC, Generic[ResolutionT]):
    """Base of the Kubernetes drivers: `preflight` is `_resolve` with its refusals raised."""

    name: str

    def __init__(self, access: KubeAccess | None, seed: int | None) -> None:
        self._access = access or KubeAccess()
        self._limits = self._access.limits
        self._seed = seed if seed is not None else secrets.randbelow(2**31)
        self._log = structlog.get_logger().bind(driver=self.name)

    @abstractmethod
    async def _resolve(self, spec: Any) -> ResolutionT:
        """Read-only: the connection, the seeded choice, and every rule that refuses the fault."""

    async def preflight(self, spec: Any) -> None:
        await self._resolved(spec)

    async def _resolved(self, spec: Any) -> ResolutionT:
        """`_resolve`, raising PreflightError with every refusal (preflight, and prepare again)."""
        resolution = await self._resolve(spec)
        if resolution.refusals:
            raise PreflightError(f"fault {spec.name}: " + "; ".join(resolution.refusals))
        return resolution

    def _connect(self) -> tuple[KubeConnection, list[str]]:
        """The connection, and the first refusal of all: a protected context without `--yes`."""
        conn = connect(self._access)
        refusal = protected_refusal(conn.context, self._limits, self._access.confirmed)
        return conn, [refusal] if refusal else []

    async def _choose_pods(
        self,
        conn: KubeConnection,
        fault: str,
        selection: PodSelection,
        permissions: Callable[[str], Sequence[Permission]],
    ) -> tuple[str, Chosen | None, list[str]]:
        """(namespace, chosen pods, refusals): allowed namespace, RBAC, a match, then `max_pods`.

        The chosen pods are None when a refusal leaves nothing to choose from."""
        namespace = selection.namespace or conn.namespace
        if refusal := namespace_refusal(namespace, self._limits, conn.namespace):
            return namespace, None, [refusal]
        if refusal := await permission_refusal(conn, permissions(namespace)):
            return namespace, None, [refusal]
        try:
            chosen = await choose_pods(conn, selection, namespace, self._seed, fault)
        except PreflightError as e:
            return namespace, None, [str(e)]
        refusal = radius_refusal(fault, "pod", chosen.names, self._limits.max_pods)
        return namespace, chosen, [refusal] if refusal else []

    async def _choose_nodes(
        self, conn: KubeConnection, fault: str, selection: NodeSelection, needed: Sequence[Permission]
    ) -> tuple[Chosen | None, list[str]]:
        """(chosen nodes, refusals): RBAC, a match, then `max_nodes`; None when nothing can be chosen."""
        if refusal := await permission_refusal(conn, needed):
            return None, [refusal]
        try:
            chosen = await choose_nodes(conn, selection, self._seed, fault)
        except PreflightError as e:
            return None, [str(e)]
        refusal = radius_refusal(fault, "node", chosen.names, self._limits.max_nodes)
        return chosen, [refusal] if refusal else []
