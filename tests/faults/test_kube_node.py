"""node.loss@kubernetes against the real control plane (kube-apiserver, controller-manager, scheduler, KWOK).

KWOK runs no containers, so these tests check what the API shows: the cordon, drillctl's taint and
marks, the taint manager's and the Eviction API's evictions, the ReplicaSet's replacements, a deleted
and recreated Node, and the exact state after revert. Each test works on a private pool of KWOK nodes.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from kubernetes import client
from structlog.testing import capture_logs

from orchestrator.errors import FaultError, PreflightError
from orchestrator.faults.kube_node import KubeNodeLossDriver
from orchestrator.kube.marks import EXPIRES_AT, FAULT, PRIOR_STATE, RUN_ID, TAINT_KEY
from orchestrator.model.spec import NodeLossFault
from orchestrator.model.undo import Undo
from tests.kube.support import (
    POOL_TAINT,
    Pool,
    drillctl_marks,
    from_record,
    inject,
    kube_api,
    live_pods,
    pool,
    wait_for,
)

__all__ = ["kube_api", "pool"]

RUN = "node-drill-20260101T000000Z"


def fault(name: str = "lose-node", **fields: Any) -> NodeLossFault:
    return NodeLossFault.model_validate({"type": "node.loss", "name": name, "duration": "10s", **fields})


def taints(node: dict[str, Any]) -> list[dict[str, Any]]:
    return list(node["spec"].get("taints") or [])


def test_crash_taints_and_cordons_pods_move_and_revert_restores_exactly(pool: Pool) -> None:
    victim = pool.add_node({"ka-role": "victim"})
    other = pool.add_node()
    pool.deployment("web", 3, spread=True)
    pool.wait_available("web", 3)
    before = pool.node(victim)
    on_victim = set(pool.pods_by_node("web")[victim])
    assert on_victim, "the spread puts pods on both nodes"

    driver = KubeNodeLossDriver(pool.access(), seed=11)
    spec = fault(nodes={"label_selector": f"ka-pool={pool.tag},ka-role=victim"}, mode="crash")

    async def inject() -> Undo:
        await driver.preflight(spec)
        undo = await driver.prepare(spec, f"{RUN}/lose-node")
        await driver.inject(spec, undo)
        return undo

    undo = asyncio.run(inject())
    state = undo.state
    assert state["chosen"] == [victim] and state["seed"] == 11 and state["mode"] == "crash"
    assert state["kubeconfig"] == str(pool.kubeconfig) and state["context"] == "drillctl"
    assert state["nodes"][0]["prior"] == {"unschedulable": False, "taints": taints(before)}
    assert sorted(state["nodes"][0]["pods"]) == sorted(f"{pool.namespace}/{p}" for p in on_victim)

    during = pool.node(victim)
    assert during["spec"]["unschedulable"] is True
    assert {"key": TAINT_KEY, "value": "lose-node", "effect": "NoExecute"} in taints(during)
    marks = drillctl_marks(during)
    assert marks[RUN_ID] == RUN and marks[FAULT] == "lose-node" and EXPIRES_AT in marks
    assert json.loads(marks[PRIOR_STATE]) == {"unschedulable": False, "taints": taints(before)}

    # The taint manager evicts the pods at once; the ReplicaSet replaces them on the other node.
    def moved() -> dict[str, list[str]] | None:
        placed = pool.pods_by_node("web")
        gone = not (set(placed.get(victim, [])) & on_victim)
        return placed if gone and sum(map(len, placed.values())) == 3 and victim not in placed else None

    wait_for("the crashed node's pods to be replaced on the other node", moved)
    pool.wait_available("web", 3)
    assert set(pool.pods_by_node("web")) == {other}

    # Revert from the record alone, with a driver that knows nothing else (as `drillctl recover` does).
    asyncio.run(KubeNodeLossDriver(None, None).revert(from_record(undo)))
    # The node lifecycle controller drops its own node.kubernetes.io/unschedulable taint once uncordoned.
    after = wait_for(
        "the node's taints as before", lambda: n if taints(n := pool.node(victim)) == taints(before) else None
    )
    assert not after["spec"].get("unschedulable")
    assert taints(after) == [{"key": POOL_TAINT, "value": pool.tag, "effect": "NoSchedule"}]
    assert drillctl_marks(after) == {}
    asyncio.run(KubeNodeLossDriver(None, None).revert(from_record(undo)))  # idempotent
    assert pool.node(victim)["metadata"]["resourceVersion"] == after["metadata"]["resourceVersion"]


def test_revert_leaves_a_node_cordoned_before_the_fault_cordoned(pool: Pool) -> None:
    node = pool.add_node()
    pool.core.patch_node(node, {"spec": {"unschedulable": True}})
    driver = KubeNodeLossDriver(pool.access(), seed=1)
    spec = fault(nodes={"names": [node]}, mode="crash")

    async def scenario() -> None:
        undo = await driver.prepare(spec, f"{RUN}/lose-node")
        await driver.inject(spec, undo)
        await driver.revert(undo)

    asyncio.run(scenario())
    after = pool.node(node)
    assert after["spec"]["unschedulable"] is True, "drillctl did not cordon it, so it does not uncordon it"
    assert all(t["key"] != TAINT_KEY for t in taints(after)) and drillctl_marks(after) == {}


def test_drain_evicts_through_the_eviction_api_honouring_the_budget(pool: Pool) -> None:
    victim = pool.add_node()
    pool.add_node()
    pool.deployment("db", 3, spread=True)
    pool.wait_available("db", 3)
    policy = budget(pool, min_available=2)
    wait_for("the budget to allow 1 disruption", lambda: _allowed(policy, pool.namespace) == 1)
    on_victim = set(pool.pods_by_node("db")[victim])
    driver = KubeNodeLossDriver(pool.access(), seed=3)
    spec = fault(nodes={"names": [victim]}, mode="drain", drain_timeout="25s")

    undo = inject(driver, spec, f"{RUN}/drain")
    # inject returns once the node is empty: no pod of the namespace is left on it.
    assert victim not in pool.pods_by_node("db")
    drained = pool.node(victim)
    assert drained["spec"]["unschedulable"] is True
    assert all(t["key"] != TAINT_KEY for t in taints(drained)), "drain does not taint"
    assert not on_victim & {p.metadata.name for p in pool.core.list_namespaced_pod(pool.namespace).items}
    pool.wait_available("db", 3)
    assert victim not in pool.pods_by_node("db"), "replacements avoid the cordoned node"
    asyncio.run(driver.revert(undo))
    assert not pool.node(victim)["spec"].get("unschedulable")


def test_drain_blocked_by_the_budget_fails_at_its_deadline_naming_the_pods(pool: Pool) -> None:
    victim = pool.add_node()
    pool.add_node()
    pool.deployment("db", 2, spread=True)
    pool.wait_available("db", 2)
    policy = budget(pool, min_available=2)
    wait_for("the budget to allow no disruption", lambda: _allowed(policy, pool.namespace) == 0)
    stuck = pool.pods_by_node("db")[victim]
    driver = KubeNodeLossDriver(pool.access(), seed=3)
    spec = fault(nodes={"names": [victim]}, mode="drain", drain_timeout="2s")

    async def scenario() -> Undo:
        undo = await driver.prepare(spec, f"{RUN}/drain")
        with pytest.raises(FaultError) as failed:
            await driver.inject(spec, undo)
        message = str(failed.value)
        assert "did not finish in 2s" in message and "refused by PodDisruptionBudgets" in message
        assert all(f"{pool.namespace}/{p}" in message for p in stuck), message
        return undo

    undo = asyncio.run(scenario())
    assert sorted(pool.pods_by_node("db")[victim]) == sorted(stuck), "the budget held: nothing evicted"
    asyncio.run(driver.revert(undo))
    after = pool.node(victim)
    assert not after["spec"].get("unschedulable") and drillctl_marks(after) == {}


def test_delete_removes_the_node_and_revert_recreates_it_from_the_manifest(pool: Pool) -> None:
    victim = pool.add_node({"ka-role": "victim", "topology.kubernetes.io/zone": "zone-x"})
    before = pool.node(victim)
    driver = KubeNodeLossDriver(pool.access(), seed=5)
    spec = fault(nodes={"names": [victim]}, mode="delete")

    undo = inject(driver, spec, f"{RUN}/delete")
    assert not pool.node_ready(victim)
    namespace, name = undo.state["nodes"][0]["tombstone"]
    tombstone = pool.core.read_namespaced_config_map(name, namespace)
    assert tombstone.metadata.annotations[RUN_ID] == RUN
    assert json.loads(tombstone.data["node.json"])["metadata"]["name"] == victim

    asyncio.run(KubeNodeLossDriver(None, None).revert(from_record(undo)))
    wait_for("KWOK to adopt the recreated node", lambda: pool.node_ready(victim), timeout=60)
    after = pool.node(victim)
    assert after["metadata"]["uid"] != before["metadata"]["uid"], "a new object"
    assert after["metadata"]["labels"] == before["metadata"]["labels"]
    assert taints(after) == taints(before)
    assert not pool.core.list_namespaced_config_map(namespace, label_selector="drillctl.io/leftover").items
    asyncio.run(KubeNodeLossDriver(None, None).revert(from_record(undo)))  # idempotent: left as it is
    assert pool.node(victim)["metadata"]["uid"] == after["metadata"]["uid"]


def test_revert_of_a_node_that_vanished_or_changed_is_reported_not_raised(pool: Pool) -> None:
    gone, changed = pool.add_node(), pool.add_node()
    driver = KubeNodeLossDriver(pool.access(max_nodes=2), seed=9)
    spec = fault(nodes={"names": [gone, changed], "count": 2}, mode="crash")

    undo = inject(driver, spec, f"{RUN}/lose-node")
    pool.core.delete_node(gone)
    # Someone restores `changed` by hand in the meantime, but leaves the marks.
    kept = [t for t in taints(pool.node(changed)) if t["key"] != TAINT_KEY]
    pool.core.patch_node(
        changed, {"spec": {"unschedulable": None, "taints": kept}}, _content_type="application/merge-patch+json"
    )
    with capture_logs() as logs:
        asyncio.run(driver.revert(undo))  # no exception
    notes = {e["node"]: e["note"] for e in logs if e["event"] == "kube_node_reverted"}
    assert notes == {
        gone: f"node {gone} vanished meanwhile: nothing to restore",
        changed: f"node {changed} restored: marks removed",
    }
    after = pool.node(changed)
    assert drillctl_marks(after) == {} and not after["spec"].get("unschedulable")


def test_seeded_choice_and_safety_refusals_before_anything_is_touched(pool: Pool) -> None:
    names = [pool.add_node() for _ in range(3)]
    selection = {"label_selector": f"ka-pool={pool.tag}"}
    versions = {n: pool.node(n)["metadata"]["resourceVersion"] for n in names}

    async def chosen(seed: int) -> list[str]:
        plan = await KubeNodeLossDriver(pool.access(), seed).plan(fault(nodes=selection))
        return [t.split()[1] for t in plan.touches if t.startswith("node ")]

    first = asyncio.run(chosen(42))
    assert len(first) == 1 and first[0] in names
    assert asyncio.run(chosen(42)) == first, "the same seed picks the same node"
    assert {tuple(asyncio.run(chosen(s))) for s in range(8)} != {tuple(first)}, "other seeds pick others"

    too_many = fault(nodes={**selection, "percent": 100.0})
    with pytest.raises(PreflightError, match=r"would touch 3 nodes, over the limit of 1 \(targets.kubernetes.max_n"):
        asyncio.run(KubeNodeLossDriver(pool.access(), 1).preflight(too_many))
    nothing = fault(nodes={"label_selector": f"ka-pool={pool.tag},missing=yes"})
    with pytest.raises(PreflightError, match="no node matches"):
        asyncio.run(KubeNodeLossDriver(pool.access(), 1).preflight(nothing))
    assert {n: pool.node(n)["metadata"]["resourceVersion"] for n in names} == versions, "nothing touched"


def test_a_node_carrying_pods_of_other_namespaces_is_refused(pool: Pool) -> None:
    node = pool.add_node()
    pool.deployment("web", 1)
    pool.wait_available("web", 1)
    pod = live_pods(pool.core, pool.namespace, "app=web")[0]
    access = pool.access(allowed_namespaces=["elsewhere"])
    with pytest.raises(PreflightError, match=f"node {node} carries pods of namespaces .*{pool.namespace}"):
        asyncio.run(KubeNodeLossDriver(access, 1).preflight(fault(nodes={"names": [node]})))
    assert pool.core.read_namespaced_pod(pod.metadata.name, pool.namespace).metadata.deletion_timestamp is None


def budget(pool: Pool, min_available: int) -> client.PolicyV1Api:
    """A PodDisruptionBudget `db` over the pods app=db; the policy API to read its status."""
    policy = client.PolicyV1Api(pool.core.api_client)
    policy.create_namespaced_pod_disruption_budget(
        pool.namespace,
        client.V1PodDisruptionBudget(
            metadata=client.V1ObjectMeta(name="db"),
            spec=client.V1PodDisruptionBudgetSpec(
                min_available=min_available, selector=client.V1LabelSelector(match_labels={"app": "db"})
            ),
        ),
    )
    return policy


def _allowed(policy: client.PolicyV1Api, namespace: str) -> int | None:
    pdb = policy.read_namespaced_pod_disruption_budget("db", namespace)
    s = pdb.status
    if s is None or (s.observed_generation or 0) < pdb.metadata.generation:
        return None
    return int(s.disruptions_allowed) if s.disruptions_allowed is not None else None
