"""`drillctl plan` and `validate` for Kubernetes faults: the exact objects, the refusals, nothing touched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from orchestrator.loading import load_drill
from orchestrator.runner import seeded
from tests.kube.support import Pool, kube_api, pool
from tests.support import run

__all__ = ["kube_api", "pool"]


def drill(folder: Path, faults: list[dict[str, Any]], seed: int | None = 3, **kube: Any) -> Path:
    document: dict[str, Any] = {
        "apiVersion": "drillctl.dev/v1",
        "kind": "Drill",
        "metadata": {"name": "kube-plan"},
        "spec": {
            "targets": {"kubernetes": kube},
            "steady_state": {"interval": "1s", "probes": [{"name": "ok", "type": "command", "argv": ["true"]}]},
            "faults": faults,
        },
    }
    if seed is not None:
        document["spec"]["seed"] = seed
    path = folder / "drill.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def test_plan_prints_the_pods_a_kill_would_touch_and_touches_nothing(pool: Pool, tmp_path: Path) -> None:
    pool.add_node()
    pool.deployment("web", 3)
    pods = {p.metadata.name for p in pool.wait_available("web", 3)}
    path = drill(tmp_path, [{"name": "kill", "type": "pod.kill", "pods": {"label_selector": "app=web", "count": 2}}])
    args = ("plan", str(path), "--namespace", pool.namespace, "--kubeconfig", str(pool.kubeconfig))
    result = run(*args, "-o", "json")
    assert result.returncode == 0, result.stderr
    (kp,) = json.loads(result.stdout)["touches"]["kubernetes"]
    assert kp["context"] == "drillctl" and kp["namespace"] == pool.namespace and kp["seed"] == 3
    chosen = [t.split()[1].split("/")[1] for t in kp["touches"] if t.startswith("pod ")]
    assert len(chosen) == 2 and set(chosen) <= pods and kp["refusals"] == []
    assert json.loads(run(*args, "-o", "json").stdout)["touches"]["kubernetes"] == [kp], "same seed, same pods"
    assert {p.metadata.name for p in pool.wait_available("web", 3)} == pods, "nothing was deleted"


def test_plan_shows_refusals_and_exits_3(pool: Pool, tmp_path: Path) -> None:
    kc = yaml.safe_load(pool.kubeconfig.read_text(encoding="utf-8"))
    kc["contexts"][0]["name"] = kc["current-context"] = "eu-prod-1"
    protected = tmp_path / "prod.kubeconfig"
    protected.write_text(yaml.safe_dump(kc), encoding="utf-8")
    path = drill(tmp_path, [{"name": "kill", "type": "pod.kill", "pods": {"label_selector": "app=none"}}])

    result = run("plan", str(path), "--namespace", pool.namespace, "--kubeconfig", str(protected))
    assert result.returncode == 3, result.stdout
    assert "REFUSED: context 'eu-prod-1' matches protected pattern '*prod*': confirm with --yes" in result.stdout
    assert "REFUSED: fault kill: no pod matches (label selector 'app=none')" in result.stdout

    unknown = run("plan", str(path), "--context", "nope", "--kubeconfig", str(pool.kubeconfig))
    assert unknown.returncode == 3 and "context 'nope' is not in kubeconfig" in unknown.stdout


def test_validate_refuses_what_the_drill_alone_shows_over_its_limits(tmp_path: Path) -> None:
    path = drill(
        tmp_path,
        [
            {"name": "a", "type": "pod.kill", "pods": {"label_selector": "x=y", "namespace": "kube-system"}},
            {"name": "b", "type": "pod.kill", "pods": {"label_selector": "x=y", "count": 5}},
            {"name": "c", "type": "node.loss", "duration": "5s", "nodes": {"label_selector": "x", "count": 2}},
            {"name": "d", "type": "pod.kill", "pods": {"label_selector": "x=y", "namespace": "billing"}},
        ],
        max_pods=4,
        allowed_namespaces=["shop"],
    )  # fmt: skip
    result = run("validate", str(path))
    assert result.returncode == 2
    for message in (
        "faults[0].pods.namespace: kube-system needs naming in targets.kubernetes.allowed_namespaces",
        "faults[1].pods.count: 5 pods is over targets.kubernetes.max_pods (4)",
        "faults[2].nodes.count: 2 nodes is over targets.kubernetes.max_nodes (1)",
        "faults[3].pods.namespace: billing is outside the allowed namespaces (shop)",
    ):
        assert message in result.stdout, result.stdout
    drain = {"name": "e", "type": "node.loss", "duration": "5s", "mode": "drain", "drain_timeout": "1m"}
    too_long = run("validate", str(drill(tmp_path, [{**drain, "nodes": {"label_selector": "x"}}])))
    assert too_long.returncode == 2 and "drain_timeout is at most 25s" in too_long.stdout


def test_a_run_of_a_kubernetes_drill_without_seed_gets_one_recorded(tmp_path: Path) -> None:
    kill = [{"name": "kill", "type": "pod.kill", "pods": {"label_selector": "app=web"}}]
    unseeded = load_drill(drill(tmp_path, kill, seed=None))
    first, second = seeded(unseeded).spec.spec.seed, seeded(unseeded).spec.spec.seed
    assert first is not None and second is not None and first != second
    assert seeded(load_drill(drill(tmp_path, kill, seed=9))).spec.spec.seed == 9
