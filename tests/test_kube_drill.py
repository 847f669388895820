"""Recovery measured the Kubernetes way: `drillctl run drills/examples/kubernetes-node-crash.yaml`
against the real control plane (kube-apiserver, controller-manager, scheduler, KWOK).

A node carrying 2 of the 3 replicas of `web` crashes (cordon + drillctl's NoExecute taint). The
taint manager evicts both pods, the ReplicaSet recreates them, the scheduler places them on the
other node, and KWOK marks them Ready after the pod-ready delay set on the pod template (3s). The
recovery window that the `kubernetes` probe measures must agree with that delay within one
sampling interval plus the controllers' reaction time.
"""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator.kube.marks import TAINT_KEY
from tests.kube.support import Pool, kube_api, pool, wait_for
from tests.support import ROOT, report_of, run, run_dirs

__all__ = ["kube_api", "pool"]

DRILL = ROOT / "drills" / "examples" / "kubernetes-node-crash.yaml"
READY_DELAY = 3.0
INTERVAL = 0.25
REACTION = 3.0
"""Eviction, ReplicaSet, scheduler, KWOK and Deployment status updates, on a loaded 2-core machine."""


def test_node_crash_recovery_window_agrees_with_the_pod_ready_delay(pool: Pool, tmp_path: Path) -> None:
    a, b = pool.add_node(), pool.add_node()
    pool.deployment("web", 3, ready_delay=f"{READY_DELAY:g}s", spread=True)
    pool.wait_available("web", 3)
    placed = pool.pods_by_node("web")
    victim = a if len(placed[a]) == 2 else b
    assert sorted(len(p) for p in placed.values()) == [1, 2] and len(placed[victim]) == 2
    pool.core.patch_node(victim, {"metadata": {"labels": {"drill-target": "kubernetes-node-crash"}}})

    plan = run("plan", str(DRILL), "--namespace", pool.namespace, "--kubeconfig", str(pool.kubeconfig))
    assert plan.returncode == 0, plan.stderr
    assert f"touches node {victim} (cordon + NoExecute taint drillctl.io/node-loss)" in plan.stdout
    for pod in placed[victim]:
        assert f"disrupts pod {pool.namespace}/{pod} (on node {victim})" in plan.stdout
    assert "seed 5" in plan.stdout
    assert not pool.node(victim)["spec"].get("unschedulable"), "plan touches nothing"

    result = run(
        "run", str(DRILL), "--namespace", pool.namespace, "--kubeconfig", str(pool.kubeconfig),
        "--runs-dir", str(tmp_path), "--quiet", timeout=240,
    )  # fmt: skip
    report = report_of(tmp_path)
    assert result.returncode == 0, (result.stdout, result.stderr, report["run"])
    assert report["run"]["seed"] == 5
    (sla,) = report["slas"]
    (window,) = report["recovery_windows"]
    measured = sla["measured"]
    print(
        f"\nnode crash of {victim} (2 of 3 replicas), KWOK pod-ready delay {READY_DELAY:g}s, "
        f"interval {INTERVAL:g}s: recovery window {measured:.3f}s (SLA max {sla['threshold']:g}s), "
        f"time to impact {window['time_to_impact']:.3f}s, "
        f"excess over the delay {measured - READY_DELAY:.3f}s"
    )
    assert sla["passed"] is True
    assert READY_DELAY - INTERVAL <= measured <= READY_DELAY + INTERVAL + REACTION, measured
    assert window["time_to_impact"] is not None and window["time_to_impact"] < REACTION

    journal = [json.loads(line) for line in (run_dirs(tmp_path)[0] / "journal.jsonl").read_text().splitlines()]
    prepared = next(e for e in journal if e["event"] == "prepared")
    assert prepared["state"]["chosen"] == [victim] and prepared["state"]["seed"] == 5

    # Reverted by the run: uncordoned, drillctl's taint and marks gone, the pods stay where they went.
    def restored() -> bool:
        node = pool.node(victim)
        taints = node["spec"].get("taints") or []
        marks = [k for k in node["metadata"].get("annotations") or {} if k.startswith("drillctl.io/")]
        return not node["spec"].get("unschedulable") and all(t["key"] != TAINT_KEY for t in taints) and not marks

    wait_for("the node to be restored", restored, timeout=10)


def test_a_selector_that_matches_no_node_stops_the_run_in_preflight(pool: Pool, tmp_path: Path) -> None:
    pool.add_node()
    result = run(
        "run", str(DRILL), "--namespace", pool.namespace, "--kubeconfig", str(pool.kubeconfig),
        "--runs-dir", str(tmp_path), "--quiet", timeout=120,
    )  # fmt: skip
    assert result.returncode == 3, (result.stdout, result.stderr)
    report = report_of(tmp_path)
    assert report["run"]["injected"] is False
    assert "fault crash-web-node: no node matches (label selector 'drill-target=kubernetes-node-crash')" in (
        report["run"]["reason"] or ""
    )
