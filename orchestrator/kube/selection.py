"""Which Kubernetes objects a fault touches: selectors, then `count` or `percent` in a seeded order.

The order is a shuffle of the matching names sorted, seeded by the drill's seed and the fault's
name: the same seed and the same cluster pick the same objects, in plans and in runs alike.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from orchestrator.errors import PreflightError
from orchestrator.kube.access import KubeConnection
from orchestrator.model.spec import NodeSelection, PodSelection, Selection


@dataclass(frozen=True)
class Chosen:
    kind: str
    namespace: str | None
    names: tuple[str, ...]
    matched: int
    seed: int

    def describe(self) -> str:
        where = f" in namespace {self.namespace}" if self.namespace else ""
        return f"{self.kind.lower()}s {', '.join(self.names)}{where} ({len(self.names)} of {self.matched} matching)"


def pick(names: Sequence[str], selection: Selection, seed: int, fault: str) -> list[str]:
    """Pure: the chosen names, in their seeded order."""
    wanted = sorted(set(names) & set(selection.names)) if selection.names else sorted(set(names))
    random.Random(f"{seed}:{fault}").shuffle(wanted)
    if selection.percent is not None:
        count = math.ceil(len(wanted) * selection.percent / 100.0)
    else:
        count = selection.count or 1
    return wanted[:count]


async def choose_nodes(conn: KubeConnection, selection: NodeSelection, seed: int, fault: str) -> Chosen:
    core = client.CoreV1Api(conn.api)
    listed: Any = await conn.call(
        core.list_node, label_selector=selection.label_selector or "", field_selector=selection.field_selector or ""
    )
    return _chosen("Node", None, [n.metadata.name for n in listed.items], selection, seed, fault)


async def choose_pods(conn: KubeConnection, selection: PodSelection, namespace: str, seed: int, fault: str) -> Chosen:
    core = client.CoreV1Api(conn.api)
    listed: Any = await conn.call(
        core.list_namespaced_pod,
        namespace,
        label_selector=selection.label_selector or "",
        field_selector=selection.field_selector or "",
    )
    live = [p.metadata.name for p in listed.items if p.metadata.deletion_timestamp is None]
    return _chosen("Pod", namespace, live, selection, seed, fault)


def criteria(selection: Selection) -> list[str]:
    """The selectors and names of a selection, as the user wrote them."""
    parts = [
        f"label selector {selection.label_selector!r}" if selection.label_selector else "",
        f"field selector {selection.field_selector!r}" if selection.field_selector else "",
        f"names {', '.join(selection.names)}" if selection.names else "",
    ]
    return [p for p in parts if p]


def describe_selection(selection: Selection) -> str:
    """For plans and reports: the criteria, then how many of the matching objects."""
    share = f"{selection.percent:g}% of them" if selection.percent is not None else f"{selection.count or 1} of them"
    return ", ".join([*criteria(selection), share])


def _chosen(kind: str, namespace: str | None, names: list[str], selection: Selection, seed: int, fault: str) -> Chosen:
    chosen = pick(names, selection, seed, fault)
    if not chosen:
        where = f" in namespace {namespace}" if namespace else ""
        wanted = ", ".join(criteria(selection)) or "no selector"
        raise PreflightError(f"fault {fault}: no {kind.lower()} matches ({wanted}){where}")
    return Chosen(kind, namespace, tuple(chosen), len(names), seed)
