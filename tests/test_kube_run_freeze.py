"""A lone `drillctl run` of a Kubernetes drill honours the cluster's freeze, against the real control plane
(kube-apiserver, controllers, KWOK): refused while ConfigMap drillctl-freeze exists, and stopped, everything
reverted, once `drillctl freeze --cluster` is made from another machine (another runs folder) while it runs.

The drill crashes a private KWOK node (cordon + drillctl's NoExecute taint) for 50 s beside a local latency toxic on
a real Toxiproxy; the freeze reaches the run through its watch of the ConfigMap."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from orchestrator.journal import read_entries
from orchestrator.kube.freeze import FREEZE_CONFIGMAP
from orchestrator.kube.marks import TAINT_KEY
from orchestrator.recovery import unsettled
from tests.fixtures.toxiproxy import ToxiproxyServer
from tests.kube.support import Pool, kube_api, pool, wait_for
from tests.support import DRILLCTL, run, run_dirs, wait_while_running, write
from tests.test_revert_notes import _drill as touched_and_notes

__all__ = ["kube_api", "pool"]


def _drill(pool: Pool) -> dict[str, Any]:
    """test_revert_notes' drill (an upstream behind a proxy, a latency toxic, a node crash), both faults held 50 s."""
    document = touched_and_notes(pool, f"ka-pool={pool.tag}")
    document["spec"]["phases"]["fault"] = "60s"
    for fault in document["spec"]["faults"]:
        fault["duration"] = "50s"
    return document


def _crashed(pool: Pool, node: str) -> bool:
    """Cordoned with drillctl's taint: the fault holds."""
    spec = pool.node(node)["spec"]
    return bool(spec.get("unschedulable")) and any(t["key"] == TAINT_KEY for t in spec.get("taints") or [])


def _restored(pool: Pool, node: str) -> bool:
    spec = pool.node(node)["spec"]
    return not spec.get("unschedulable") and all(t["key"] != TAINT_KEY for t in spec.get("taints") or [])


def _toxics(toxiproxy: ToxiproxyServer) -> list[object]:
    """The toxics on proxy `up`; none once the run deleted the proxy it created."""
    answer = toxiproxy.get("/proxies/up/toxics")
    if answer.status_code == 404:
        return []
    toxics: list[object] = answer.json()
    return toxics


def _has_freeze(pool: Pool) -> bool:
    try:
        pool.core.read_namespaced_config_map(FREEZE_CONFIGMAP, pool.namespace)
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    return True


def test_a_lone_kubernetes_run_is_refused_while_the_cluster_is_frozen_and_stopped_when_it_freezes(
    pool: Pool, toxiproxy: ToxiproxyServer, tmp_path: Path
) -> None:
    node = pool.add_node()
    path = write(tmp_path, _drill(pool))
    runs = tmp_path / "runs"
    kube = ["--kubeconfig", str(pool.kubeconfig)]
    cluster = ["--cluster", *kube, "--namespace", pool.namespace]
    args = ["run", str(path), "--runs-dir", str(runs), "--toxiproxy-url", toxiproxy.url, "--quiet", *kube]
    args += ["--freeze-namespace", pool.namespace]
    elsewhere = str(tmp_path / "runs-elsewhere")  # the operator's machine: nothing runs there

    assert run("freeze", "--reason", "change window", "--runs-dir", elsewhere, *cluster).returncode == 0
    refused = run(*args)
    assert refused.returncode == 3, refused.stderr
    said = refused.stderr.strip().splitlines()[-1]
    assert said.startswith("error: drills are frozen since ") and ": change window (configmap " in said
    assert said.endswith(f"`drillctl unfreeze --cluster -n {pool.namespace}` lifts it"), said
    assert not runs.exists(), "a refused run leaves no run directory"
    assert _restored(pool, node), "nothing touched"
    assert run("unfreeze", "--runs-dir", elsewhere, *cluster).returncode == 0

    proc = subprocess.Popen([DRILLCTL, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_while_running(proc, lambda: _crashed(pool, node), 90, f"the crash of node {node}")
    (run_dir,) = run_dirs(runs)
    wait_while_running(proc, lambda: bool(_toxics(toxiproxy)), 30, "the latency toxic")
    asked = time.time()
    frozen = run("freeze", "--reason", "prod incident", "--runs-dir", elsewhere, *cluster, "-o", "json")
    made = time.monotonic()
    assert frozen.returncode == 0, frozen.stderr
    assert json.loads(frozen.stdout)["stopped"] == [], "the run is told by its watch, not through this folder"
    out, err = proc.communicate(timeout=120)
    ended = time.monotonic() - made
    reverted = [float(e["wall"]) for e in read_entries(run_dir / "journal.jsonl") if e["event"] == "reverted"]
    print(
        f"cluster freeze -> both faults reverted {max(reverted) - asked:.3f}s after `drillctl freeze --cluster` "
        f"started (its own start-up included), the run ended {ended:.3f}s after it returned"
    )
    assert proc.returncode == 4, (out, err)
    assert "Traceback" not in err
    # Within 10 ms of the ConfigMap's creation on the test cluster (bench/freeze_stop.py); this bound is generous.
    assert len(reverted) == 2 and max(reverted) - asked < 15

    report = json.loads((run_dir / "report.json").read_text())
    stopped = report["run"]["stopped_by"]
    assert (stopped["kind"], stopped["name"], stopped["evidence"]) == ("abort", "drillctl freeze", "prod incident")
    assert "aborted by drillctl freeze" in report["run"]["reason"]
    assert report["rollback"]["reverted"] and not report["rollback"]["failed"]
    assert unsettled(runs) == [] and not (run_dir / "control").exists()
    assert _toxics(toxiproxy) == []
    wait_for(f"node {node} to be restored", lambda: _restored(pool, node), timeout=10)
    assert _has_freeze(pool)
    assert run("unfreeze", "--runs-dir", elsewhere, *cluster).returncode == 0
