"""Blast-radius rules (pure) and the RBAC preflight against the real API server's authorizer."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from orchestrator.errors import PreflightError
from orchestrator.faults.kube_node import KubeNodeLossDriver
from orchestrator.faults.kube_pod import KubePodKillDriver
from orchestrator.kube.access import KubeAccess, connect
from orchestrator.kube.safety import (
    Permission,
    missing_permissions,
    namespace_refusal,
    node_loss_permissions,
    protected_refusal,
    radius_refusal,
)
from orchestrator.model.spec import KubernetesTargets, NodeLossFault, PodKillFault
from tests.kube.support import POD_READER, Pool, kube_api, pool, service_account_token, token_kubeconfig, wait_for

__all__ = ["kube_api", "pool"]


def test_protected_contexts_need_yes_or_an_allowance() -> None:
    limits = KubernetesTargets()
    refusal = protected_refusal("gke-prod-eu", limits, confirmed=False)
    assert refusal is not None and "'*prod*'" in refusal and "--yes" in refusal
    assert protected_refusal("gke-prod-eu", limits, confirmed=True) is None
    assert protected_refusal("gke-prod-eu", KubernetesTargets(allow_protected=True), confirmed=False) is None
    assert protected_refusal("staging", limits, confirmed=False) is None
    assert protected_refusal("staging", KubernetesTargets(protected_contexts=["stag*"]), confirmed=False)


def test_namespaces_default_to_the_drills_own_and_kube_system_needs_naming() -> None:
    limits = KubernetesTargets()
    assert namespace_refusal("shop", limits, "shop") is None
    assert "outside the allowed namespaces (shop)" in (namespace_refusal("billing", limits, "shop") or "")
    assert "kube-system is refused" in (namespace_refusal("kube-system", limits, "kube-system") or "")
    explicit = KubernetesTargets(allowed_namespaces=["shop", "kube-system"])
    assert namespace_refusal("kube-system", explicit, "shop") is None
    assert namespace_refusal("billing", explicit, "shop") == (
        "namespace billing is outside the allowed namespaces (shop, kube-system)"
    )


def test_blast_radius_names_both_numbers() -> None:
    assert radius_refusal("f", "pod", ["a", "b"], 2) is None
    refusal = radius_refusal("f", "node", ["n1", "n2"], 1)
    assert refusal == "fault f would touch 2 nodes, over the limit of 1 (targets.kubernetes.max_nodes): n1, n2"


def test_permissions_per_mode() -> None:
    crash = node_loss_permissions("crash", ["shop"], "shop")
    assert Permission("patch", "nodes") in crash and Permission("list", "pods") in crash
    drain = node_loss_permissions("drain", ["shop", "web"], "shop")
    assert Permission("create", "pods", "web", subresource="eviction") in drain
    delete = node_loss_permissions("delete", ["shop"], "shop")
    assert Permission("create", "nodes") in delete and Permission("create", "configmaps", "shop") in delete
    assert str(Permission("create", "pods", "web", subresource="eviction")) == "create pods/eviction in namespace web"


def test_unknown_context_is_a_preflight_error_naming_the_known_ones(pool: Pool) -> None:
    access = KubeAccess(kubeconfig=str(pool.kubeconfig), context="nope")
    spec = PodKillFault.model_validate({"type": "pod.kill", "name": "k", "pods": {"label_selector": "a=b"}})
    with pytest.raises(PreflightError, match=r"context 'nope' is not in kubeconfig .*known contexts: drillctl"):
        asyncio.run(KubePodKillDriver(access, 1).preflight(spec))


def test_a_narrow_role_is_refused_naming_verb_resource_and_namespace(
    pool: Pool, kube_api: client.ApiClient, tmp_path: Path
) -> None:
    """A real ServiceAccount token, bound to a Role that may only read pods (as in tests/cluster)."""
    token = service_account_token(kube_api, pool.namespace, "reader", POD_READER)
    kubeconfig = token_kubeconfig(pool.kubeconfig, token, "reader", tmp_path)
    access = KubeAccess(kubeconfig=str(kubeconfig), namespace=pool.namespace)
    conn = connect(access)
    wait_for("the RoleBinding to take effect", lambda: _can_list_pods(conn))

    kill = PodKillFault.model_validate({"type": "pod.kill", "name": "k", "pods": {"label_selector": "a=b"}})
    with pytest.raises(PreflightError) as refused:
        asyncio.run(KubePodKillDriver(access, 1).preflight(kill))
    assert f"missing RBAC permission in context drillctl: delete pods in namespace {pool.namespace}" in str(
        refused.value
    )

    crash = NodeLossFault.model_validate(
        {"type": "node.loss", "name": "n", "duration": "5s", "nodes": {"label_selector": "a=b"}, "mode": "drain"}
    )
    with pytest.raises(PreflightError) as refused:
        asyncio.run(KubeNodeLossDriver(access, 1).preflight(crash))
    message = str(refused.value)
    for missing in ("get nodes cluster-wide", "patch nodes cluster-wide", "list pods cluster-wide"):
        assert missing in message, message
    assert f"create pods/eviction in namespace {pool.namespace}" in message


def _can_list_pods(conn: Any) -> bool:
    return not asyncio.run(missing_permissions(conn, [Permission("list", "pods", conn.namespace)]))
