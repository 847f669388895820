"""The chart's test helpers: the pinned Helm, `helm template`, and applying what it renders to the test cluster.

Used by tests/charts/test_chart.py and by tests/node/test_chart_cronjob.py (the CronJob on the real node).
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.dynamic import DynamicClient

from tests.fixtures.kube import KubeCluster
from tests.support import ROOT

CHART = ROOT / "charts" / "drillctl"
HELM = ROOT / ".tools" / "bin" / "helm"
HELM_TIMEOUT = 1800
"""The first run on a clean machine builds Helm (go install, a few minutes) inside the first test's setup."""


@pytest.fixture(scope="module")
def helm() -> Path:
    """The pinned Helm; the install script builds it once (go install) and skips when it is there."""
    subprocess.run(["bash", str(ROOT / "scripts" / "install-helm.sh")], check=True, timeout=HELM_TIMEOUT)
    return HELM


def render(
    helm: Path, tmp_path: Path, values: dict[str, Any] | None, namespace: str = "chaos", release: str = "gd"
) -> list[dict[str, Any]]:
    """`helm template` of the chart with these values (None: its defaults), as a list of manifests."""
    args = [str(helm), "template", release, str(CHART), "--namespace", namespace]
    if values is not None:
        path = tmp_path / f"values-{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(yaml.safe_dump(values))
        args += ["-f", str(path)]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def apply(kube_cluster: KubeCluster, docs: list[dict[str, Any]], namespace: str) -> None:
    """Server-side dry run of everything first (nothing is written unless all of it is accepted), then apply."""
    dynamic = DynamicClient(kube_cluster.api_client())
    for dry_run in ("All", None):
        for doc in sorted(docs, key=lambda d: d["kind"] != "Namespace"):
            resource = dynamic.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
            kwargs: dict[str, Any] = {"field_manager": "drillctl-chart-test", "_request_timeout": 20}
            if dry_run:
                kwargs["dry_run"] = dry_run
            if dry_run and doc["kind"] != "Namespace" and doc["metadata"].get("namespace") not in (None, namespace):
                continue  # its namespace is created by the same manifests: checked in the real pass
            resource.server_side_apply(
                body=doc, name=doc["metadata"]["name"], namespace=doc["metadata"].get("namespace"), **kwargs
            )


RUNBOOK = "# Web\n\n## Web lost a pod\n\nThe Deployment replaces it; check the scheduler if it does not.\n"
"""runbooks/web.md of the chart's drill (its `web-lost-a-pod` anchor)."""


def web_pod_kill_drill(
    namespace: str,
    probes: list[dict[str, Any]],
    slas: list[dict[str, Any]],
    pods_namespace: str | None = None,
    **fault_fields: str,
) -> dict[str, Any]:
    """A drill that kills one pod of Deployment `web` (label app=web), judged by `probes` and `slas`."""
    pods: dict[str, Any] = {"label_selector": "app=web", "count": 1}
    if pods_namespace:
        pods["namespace"] = pods_namespace
    return {
        "apiVersion": "drillctl.dev/v1",
        "kind": "Drill",
        "metadata": {"name": "web-pod-kill", "runbook": "runbooks/web.md#web-lost-a-pod"},
        "spec": {
            "targets": {"kubernetes": {"namespace": namespace, "max_pods": 1}},
            "steady_state": {"interval": "200ms", "probes": probes},
            "phases": {"baseline": "2s", "fault": "2s", "recovery": "40s"},
            "faults": [{"name": "kill-one", "type": "pod.kill", "pods": pods, **fault_fields}],
            "slas": slas,
        },
    }
