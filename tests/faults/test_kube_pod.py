"""pod.kill@kubernetes against the real control plane: seeded choice, deletion, the ReplicaSet's
replacements, and every refusal before anything is deleted."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from orchestrator.errors import PreflightError
from orchestrator.faults.kube_pod import KubePodKillDriver
from orchestrator.model.spec import PodKillFault
from orchestrator.model.undo import Undo
from tests.kube.support import Pool, from_record, kube_api, live_pods, pool, wait_for

__all__ = ["kube_api", "pool"]

RUN = "pod-drill-20260101T000000Z"


def fault(**fields: Any) -> PodKillFault:
    return PodKillFault.model_validate({"type": "pod.kill", "name": "kill-web", **fields})


def test_kills_the_seeded_choice_and_the_owner_replaces_them(pool: Pool) -> None:
    pool.add_node()
    pool.deployment("web", 4)
    pool.wait_available("web", 4)
    before = {p.metadata.name: p.metadata.uid for p in live_pods(pool.core, pool.namespace, "app=web")}
    spec = fault(pods={"label_selector": "app=web", "count": 2}, grace_period="0s")
    driver = KubePodKillDriver(pool.access(), seed=21)

    async def kill() -> Undo:
        await driver.preflight(spec)
        undo = await driver.prepare(spec, f"{RUN}/kill-web")
        await driver.inject(spec, undo)
        return undo

    undo = asyncio.run(kill())
    state = undo.state
    assert state["seed"] == 21 and state["matched"] == 4 and len(state["chosen"]) == 2
    assert {p["name"]: p["uid"] for p in state["pods"]} == {n: before[n] for n in state["chosen"]}
    again = asyncio.run(KubePodKillDriver(pool.access(), seed=21).plan(spec))
    assert again.refusals == ()

    def replaced() -> set[str] | None:
        names = {p.metadata.name for p in live_pods(pool.core, pool.namespace, "app=web")}
        return names if not names & set(state["chosen"]) and len(names) == 4 else None

    survivors = wait_for("the killed pods to be replaced", replaced)
    assert set(before) - set(state["chosen"]) <= survivors, "only the chosen pods were killed"
    pool.wait_available("web", 4)
    asyncio.run(KubePodKillDriver(None, None).revert(from_record(undo)))  # nothing to restore, and no error


def test_same_seed_same_pods(pool: Pool) -> None:
    pool.add_node()
    pool.deployment("web", 5)
    pool.wait_available("web", 5)
    spec = fault(pods={"label_selector": "app=web", "percent": 40.0})

    def chosen(seed: int) -> tuple[str, ...]:
        plan = asyncio.run(KubePodKillDriver(pool.access(), seed).plan(spec))
        return tuple(t for t in plan.touches if t.startswith("pod "))

    assert len(chosen(5)) == 2, "40% of 5, rounded up"
    assert chosen(5) == chosen(5)
    assert len({chosen(s) for s in range(6)}) > 1


def test_refusals_come_before_anything_is_deleted(pool: Pool) -> None:
    pool.add_node()
    pool.deployment("web", 3)
    pool.wait_available("web", 3)
    uids = {p.metadata.uid for p in live_pods(pool.core, pool.namespace, "app=web")}
    cases = [
        (pool.access(), fault(pods={"label_selector": "app=web", "namespace": "default"}), "outside the allowed"),
        (
            pool.access(allowed_namespaces=[pool.namespace]),
            fault(pods={"label_selector": "k8s-app=kube-dns", "namespace": "kube-system"}),
            "kube-system is refused unless",
        ),
        (pool.access(), fault(pods={"label_selector": "app=nothing"}), "no pod matches .*'app=nothing'"),
        (
            pool.access(max_pods=2),
            fault(pods={"label_selector": "app=web", "count": 3}),
            "would touch 3 pods, over the limit of 2",
        ),
        (
            pool.access(protected_contexts=["drill*"]),
            fault(pods={"label_selector": "app=web"}),
            "context 'drillctl' matches protected pattern 'drill\\*': confirm with --yes",
        ),
    ]
    for access, spec, message in cases:
        with pytest.raises(PreflightError, match=message):
            asyncio.run(KubePodKillDriver(access, 1).preflight(spec))
    assert {p.metadata.uid for p in live_pods(pool.core, pool.namespace, "app=web")} == uids
