"""The Helm chart's CronJob runs a real game day in the cluster: drillctl's own image (built from the Dockerfile by
scripts/k8s/drillctl-image.sh) on the real node, as the chart's least-privilege ServiceAccount, writing its report
to a volume this test reads.

The test cluster has no pod network, so the chart's pod runs on host networking and is told where the API server
listens (KUBERNETES_SERVICE_HOST/PORT in extraEnv); the reports volume is a hostPath PersistentVolume, the real
node being this machine. A Job made from the CronJob's template stands in for the schedule (`kubectl create job
--from=cronjob/...`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml
from kubernetes import client

from tests.charts.support import HELM_TIMEOUT, RUNBOOK, apply, helm, render, web_pod_kill_drill
from tests.fixtures.kube import KubeCluster, RealNode
from tests.fixtures.toxiproxy import free_port
from tests.kube.support import kube_api, live_pods, namespace, wait_for
from tests.node.support import START_S, serving, target_deployment
from tests.support import ROOT

__all__ = ["helm", "kube_api", "namespace"]

pytestmark = pytest.mark.timeout(HELM_TIMEOUT)

IMAGE_SCRIPT = ROOT / "scripts" / "k8s" / "drillctl-image.sh"
IMAGE_TIMEOUT = 1500
"""The first build: base images, toxiproxy compiled, drillctl and its dependencies from PyPI (about 5 min)."""
UID = 10001
"""The image's user (Dockerfile), and the chart's runAsUser."""


@pytest.fixture(scope="module")
def drillctl_image(kube_cluster: KubeCluster, real_node: RealNode) -> str:
    """drillctl's image from the Dockerfile, imported into the real node (built once per content of the package)."""
    env = {**os.environ, "DRILLCTL_K8S_DIR": str(kube_cluster.state_dir)}
    built = subprocess.run(
        ["bash", str(IMAGE_SCRIPT)], stdout=subprocess.PIPE, stderr=sys.stderr, text=True, env=env,
        timeout=IMAGE_TIMEOUT, check=False,
    )  # fmt: skip
    assert built.returncode == 0, f"{IMAGE_SCRIPT} failed (its output is above)"
    return built.stdout.strip().splitlines()[-1]


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    """A folder the image's user may write (the hostPath behind the reports volume)."""
    folder = tmp_path / "reports"
    folder.mkdir()
    os.chown(folder, UID, UID)
    return folder


def hostpath_claim(name: str, namespace: str, folder: Path) -> list[dict[str, Any]]:
    """A PersistentVolume on `folder` bound to the claim `name` (no provisioner: bound by name both ways)."""
    volume = f"{namespace}-{name}"[:63]
    return [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": volume},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "",
                "hostPath": {"path": str(folder), "type": "Directory"},
                "claimRef": {"namespace": namespace, "name": name},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "volumeName": volume,
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    ]


def kill_drill(namespace: str, port: int) -> dict[str, Any]:
    """Kill the pod of Deployment `web`; both the kubelet's view and the service itself must recover."""
    window = {"type": "recovery_window", "from": "fault_start", "max": "30s", "stable_for": "1s"}
    ready = {"type": "kubernetes", "name": "web-ready", "check": "ready_pods", "label_selector": "app=web", "min": 1}
    http = {"type": "http", "name": "web-http", "url": f"http://127.0.0.1:{port}/healthz", "timeout": "500ms"}
    slas = [
        {"name": "ready-again", "probes": ["web-ready"], **window},
        {"name": "serving-again", "probes": ["web-http"], **window},
    ]
    return web_pod_kill_drill(namespace, [ready, http], slas)


def test_the_charts_cronjob_runs_a_game_day_on_the_real_node_and_writes_its_report_to_the_volume(
    kube_cluster: KubeCluster,
    real_node: RealNode,
    kube_api: client.ApiClient,
    namespace: str,
    helm: Path,
    drillctl_image: str,
    reports: Path,
    tmp_path: Path,
) -> None:
    core, apps, batch = client.CoreV1Api(kube_api), client.AppsV1Api(kube_api), client.BatchV1Api(kube_api)
    port = free_port()
    apps.create_namespaced_deployment(namespace, target_deployment(real_node, "web", port))
    wait_for("web to serve", lambda: live_pods(core, namespace, "app=web") and serving(port), timeout=START_S)
    [before] = live_pods(core, namespace, "app=web")

    repository, _, tag = drillctl_image.rpartition(":")
    server = urlparse(yaml.safe_load(kube_cluster.kubeconfig.read_text())["clusters"][0]["cluster"]["server"])
    gameday = {
        "apiVersion": "drillctl.dev/v1",
        "kind": "GameDay",
        "metadata": {"name": "nightly"},
        "spec": {
            "drills": ["../drills/*.yaml"],
            "schedule": "0 3 * * *",
            "lease": {"enabled": True, "namespace": namespace, "duration": "15s"},
        },
    }
    values = {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        "gamedays": [{"name": "nightly", "gameday": gameday, "args": ["--force"]}],
        "drills": {"web-pod-kill.yaml": yaml.safe_dump(kill_drill(namespace, port))},
        "runbooks": {"web.md": RUNBOOK},
        "reports": {"persistence": {"enabled": True, "existingClaim": "reports"}},
        "rbac": {"targetNamespaces": [namespace], "podKill": True, "probes": True},
        "hostNetwork": True,
        "extraEnv": [
            {"name": "KUBERNETES_SERVICE_HOST", "value": server.hostname},
            {"name": "KUBERNETES_SERVICE_PORT", "value": str(server.port)},
        ],
        "nodeSelector": real_node.node_selector,
        "tolerations": real_node.tolerations,
    }
    docs = render(helm, tmp_path, values, namespace)
    apply(kube_cluster, hostpath_claim("reports", namespace, reports) + docs, namespace)
    try:
        job = run_once(batch, namespace, "gd-drillctl-nightly")
        finished = wait_for("the game day's Job to finish", lambda: finished_job(batch, namespace, job), timeout=300)
        logs = pod_logs(core, namespace, job)
        assert finished == "Complete", logs
    finally:
        core.delete_persistent_volume(f"{namespace}-reports"[:63])

    [report_file] = list(reports.glob("*/report.json"))
    report = json.loads(report_file.read_text())
    measured = {s["name"]: s["measured"] for s in report["slas"]}
    print(f"\ngame day in the cluster, drillctl {tag}: {measured}; report {report_file.relative_to(reports)}")
    assert report["run"]["status"] == "passed" and all(s["passed"] for s in report["slas"]), report["run"]
    assert measured["serving-again"] > 0.3, "a real container was killed and started again"
    assert list(reports.glob("gameday-nightly-*/index.html")), "the game day's own page"
    assert report_file.stat().st_uid == UID, "written by the image's non-root user"
    [after] = live_pods(core, namespace, "app=web")
    assert after.metadata.uid != before.metadata.uid


def run_once(batch: client.BatchV1Api, namespace: str, cronjob: str) -> str:
    """A Job from the CronJob's template, now (what `kubectl create job --from=cronjob/...` does)."""
    cron = json.loads(batch.read_namespaced_cron_job(cronjob, namespace, _preload_content=False).data)
    name = f"{cronjob}-now"
    owner = {"apiVersion": "batch/v1", "kind": "CronJob", "name": cronjob, "uid": cron["metadata"]["uid"]}
    body = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
            "labels": cron["spec"]["jobTemplate"]["metadata"].get("labels", {}),
            "ownerReferences": [owner],
        },
        "spec": cron["spec"]["jobTemplate"]["spec"],
    }
    batch.create_namespaced_job(namespace, body)
    return name


def finished_job(batch: client.BatchV1Api, namespace: str, name: str) -> str | None:
    conditions = batch.read_namespaced_job(name, namespace).status.conditions or []
    return next((c.type for c in conditions if c.type in ("Complete", "Failed") and c.status == "True"), None)


def pod_logs(core: client.CoreV1Api, namespace: str, job: str) -> str:
    pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={job}").items
    return "\n".join(str(core.read_namespaced_pod_log(p.metadata.name, namespace)) for p in pods)
