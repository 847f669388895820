"""Blast-radius rules for Kubernetes faults, judged in preflight before anything is touched.

The rules are pure (names and numbers in, a refusal out), so `drillctl plan` and a run judge
alike; only `missing_permissions` asks the API server, through SelfSubjectAccessReview, which
changes nothing.
"""

from __future__ import annotations

import asyncio
import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from orchestrator.kube.access import KubeConnection
from orchestrator.model.spec import KubernetesTargets

SYSTEM_NAMESPACE = "kube-system"


@dataclass(frozen=True)
class Permission:
    """One RBAC check: `verb` on `resource` (and `subresource`) in `namespace`, or cluster-wide when None."""

    verb: str
    resource: str
    namespace: str | None = None
    group: str = ""
    subresource: str = ""

    def __str__(self) -> str:
        what = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        if self.group:
            what = f"{what}.{self.group}"
        where = f"in namespace {self.namespace}" if self.namespace else "cluster-wide"
        return f"{self.verb} {what} {where}"


def protected_refusal(context: str, limits: KubernetesTargets, confirmed: bool) -> str | None:
    """A context matching a protected pattern (default `*prod*`) needs `--yes` or `allow_protected: true`."""
    matched = next((p for p in limits.protected_contexts if fnmatch.fnmatchcase(context, p)), None)
    if matched is None or confirmed or limits.allow_protected:
        return None
    return (
        f"context {context!r} matches protected pattern {matched!r}: confirm with --yes "
        f"or set targets.kubernetes.allow_protected: true"
    )


def allowed_namespaces(limits: KubernetesTargets, drill_namespace: str) -> tuple[str, ...]:
    """`allowed_namespaces`, or else only the drill's own namespace."""
    return tuple(limits.allowed_namespaces) or (drill_namespace,)


def namespace_refusal(namespace: str, limits: KubernetesTargets, drill_namespace: str) -> str | None:
    """kube-system only when named explicitly in `allowed_namespaces` (being the drill's namespace is not enough)."""
    if namespace == SYSTEM_NAMESPACE and SYSTEM_NAMESPACE not in limits.allowed_namespaces:
        return (
            f"namespace {SYSTEM_NAMESPACE} is refused unless targets.kubernetes.allowed_namespaces names it explicitly"
        )
    allowed = allowed_namespaces(limits, drill_namespace)
    if namespace not in allowed:
        return f"namespace {namespace} is outside the allowed namespaces ({', '.join(allowed)})"
    return None


def radius_refusal(fault: str, kind: str, chosen: Sequence[str], limit: int) -> str | None:
    if len(chosen) <= limit:
        return None
    field = "max_nodes" if kind == "node" else "max_pods"
    return (
        f"fault {fault} would touch {len(chosen)} {kind}s, over the limit of {limit} "
        f"(targets.kubernetes.{field}): {', '.join(chosen)}"
    )


def node_loss_permissions(mode: str, namespaces: Iterable[str], drill_namespace: str) -> list[Permission]:
    """What `node.loss` needs, revert included; pods are listed cluster-wide to see what a node carries."""
    needed = [Permission(v, "nodes") for v in ("get", "list", "patch")]
    needed.append(Permission("list", "pods"))
    if mode == "drain":
        needed += [Permission("create", "pods", ns, subresource="eviction") for ns in namespaces]
    if mode == "delete":
        needed += [Permission("delete", "nodes"), Permission("create", "nodes")]
        needed += [Permission(v, "configmaps", drill_namespace) for v in ("get", "create", "delete")]
    return needed


def pod_kill_permissions(namespace: str) -> list[Permission]:
    return [Permission(v, "pods", namespace) for v in ("get", "list", "delete")]


async def missing_permissions(conn: KubeConnection, needed: Sequence[Permission]) -> list[Permission]:
    """Ask the API server, as the drill's own user, which of `needed` it would refuse."""
    api = client.AuthorizationV1Api(conn.api)

    async def allowed(p: Permission) -> bool:
        review = client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(
                    verb=p.verb,
                    resource=p.resource,
                    namespace=p.namespace,
                    group=p.group,
                    subresource=p.subresource or None,
                )
            )
        )
        answer: Any = await conn.call(api.create_self_subject_access_review, review)
        return bool(answer.status.allowed)

    unique = list(dict.fromkeys(needed))
    verdicts = await asyncio.gather(*(allowed(p) for p in unique))
    return [p for p, ok in zip(unique, verdicts, strict=True) if not ok]


def rbac_refusal(context: str, missing: Sequence[Permission]) -> str | None:
    if not missing:
        return None
    return f"missing RBAC permission in context {context}: " + "; ".join(str(p) for p in missing)


async def permission_refusal(conn: KubeConnection, needed: Sequence[Permission]) -> str | None:
    """The refusal naming every permission of `needed` that the API server would deny, or None."""
    return rbac_refusal(conn.context, await missing_permissions(conn, needed))
