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
