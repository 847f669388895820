"""The cluster's freeze against the real test control plane: `drillctl freeze --cluster` from another machine (another
runs folder) stops a running game day's drill through the game day's watch, new game days refuse while it holds,
and `unfreeze --cluster` lets them start again."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from kubernetes import client

from orchestrator.journal import read_entries
from orchestrator.kube.freeze import FREEZE_CONFIGMAP
from orchestrator.recovery import unsettled
from tests.fixtures.kube import KubeCluster
from tests.gameday.test_run import gameday, short_drill
from tests.kube.support import kube_api, namespace
from tests.support import DRILLCTL, proxied_upstream_drill, run, run_dirs, wait_while_running, write

__all__ = ["kube_api", "namespace"]


def injected(runs: Path) -> bool:
    """A drill of the game day has its fault in place (its journal says so)."""
    journals = [d / "journal.jsonl" for d in run_dirs(runs) if (d / "journal.jsonl").exists()] if runs.exists() else []
    return any(e["event"] == "injected" for j in journals for e in read_entries(j))


def test_a_cluster_freeze_stops_a_running_game_day_refuses_new_ones_and_unfreeze_lets_them_start(
    kube_cluster: KubeCluster, namespace: str, tmp_path: Path
) -> None:
    long_drill = proxied_upstream_drill(
        "long",
        interval="100ms",
        probe_timeout="1s",
        phases={"baseline": "500ms", "fault": "60s", "recovery": "2s"},
        faults=[{"name": "slow", "type": "network.latency", "proxy": "up", "latency": "50ms", "duration": "50s"}],
        slas=[{"name": "recovers", "type": "recovery_window", "from": "fault_end", "max": "3s", "stable_for": "200ms"}],
    )
    write(tmp_path, long_drill, "long.yaml")
    write(tmp_path, short_drill("short", "2s"), "short.yaml")
    lease = {"enabled": True, "namespace": namespace, "duration": "10s"}
    running_day = write(tmp_path, gameday(["long.yaml", "short.yaml"], lease=lease), "gameday-long.yaml")
    next_day = write(tmp_path, gameday(["short.yaml"], lease=lease), "gameday-short.yaml")
    kube = ["--kubeconfig", str(kube_cluster.kubeconfig)]
    cluster = ["--cluster", *kube, "--namespace", namespace]
    runs = tmp_path / "runs-cluster"
    day = subprocess.Popen(
        [DRILLCTL, "gameday", "run", str(running_day), "--runs-dir", str(runs), "-o", "json", "--quiet", *kube],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_while_running(day, lambda: injected(runs), 90, "the game day's first drill to inject its fault")

    elsewhere = tmp_path / "runs-elsewhere"  # the operator's machine: nothing runs there
    frozen = run("freeze", "--reason", "prod incident", "--runs-dir", str(elsewhere), *cluster, "-o", "json")
    assert frozen.returncode == 0, frozen.stderr
    document = json.loads(frozen.stdout)
    assert document["stopped"] == [] and document["cluster"]["already_frozen"] is False
    assert document["cluster"]["configmap"].startswith(f"configmap {namespace}/{FREEZE_CONFIGMAP} at ")
    asked = time.monotonic()
    out, err = day.communicate(timeout=120)
    print(f"cluster freeze -> game day ended {time.monotonic() - asked:.3f}s later (its drill rolled back)")
    assert day.returncode == 4, err
    result = json.loads(out)
    first, second = result["drills"]
    assert first["status"] == "aborted" and "aborted by drillctl freeze" in first["reason"]
    assert "prod incident" in first["reason"]
    assert second["status"] == "skipped"
    assert result["stop_reason"].startswith("frozen since") and result["stop_reason"].endswith(": prod incident")
    assert unsettled(runs) == []
    assert (
        not client.CoordinationV1Api(kube_cluster.api_client())
        .read_namespaced_lease("drillctl-gameday", namespace, _request_timeout=10)
        .spec.holder_identity
    )

    again = run("freeze", "--reason", "second thoughts", "--runs-dir", str(elsewhere), *cluster, "-o", "json")
    assert json.loads(again.stdout)["cluster"]["already_frozen"] is True
    next_runs = tmp_path / "runs-next"
    refused = run("gameday", "run", str(next_day), "--runs-dir", str(next_runs), "--quiet", *kube)
    assert refused.returncode == 3
    assert f"refused: configmap {namespace}/{FREEZE_CONFIGMAP}" in refused.stderr and "prod incident" in refused.stderr
    assert not next_runs.exists(), "nothing started"

    lifted = run("unfreeze", "--runs-dir", str(elsewhere), *cluster)
    assert lifted.returncode == 0, lifted.stderr
    assert f"configmap {namespace}/{FREEZE_CONFIGMAP}" in lifted.stdout and "prod incident" in lifted.stdout
    started = run("gameday", "run", str(next_day), "--runs-dir", str(next_runs), "--quiet", *kube, timeout=180)
    assert started.returncode == 0, started.stderr
    twice = run("unfreeze", "--runs-dir", str(elsewhere), *cluster, "-o", "json")
    assert json.loads(twice.stdout)["cluster"]["cleared"] is None


def test_freeze_says_when_the_cluster_cannot_be_reached_and_freezes_the_machine_all_the_same(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    missing = str(tmp_path / "no-kubeconfig")
    frozen = run("freeze", "--reason", "x", "--runs-dir", str(runs), "--cluster", "--kubeconfig", missing)
    assert frozen.returncode == 3
    assert "error: the cluster is not frozen: no kubeconfig at" in frozen.stderr
    assert (runs / "freeze.json").exists()
