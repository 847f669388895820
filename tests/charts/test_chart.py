"""charts/drillctl: `helm lint` and `helm template` (Helm built by scripts/install-helm.sh), then the rendered
manifests applied to the real test control plane (kube-apiserver), the ServiceAccount's permissions checked
with SubjectAccessReview, and a real `drillctl gameday run` as that ServiceAccount, with its own token."""

from __future__ import annotations

import base64
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from orchestrator.kube.safety import node_loss_permissions, pod_kill_permissions
from tests.charts.support import CHART, HELM_TIMEOUT, RUNBOOK, apply, helm, render, web_pod_kill_drill
from tests.fixtures.kube import KubeCluster
from tests.support import DRILLCTL

__all__ = ["helm"]

pytestmark = pytest.mark.timeout(HELM_TIMEOUT)


def kinds(docs: list[dict[str, Any]]) -> list[str]:
    return sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs)


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind]
    return found


def rules(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for d in docs if d["kind"] in ("Role", "ClusterRole") for r in d["rules"]]


# A drill the chart ships in a ConfigMap: kill one pod of Deployment `web` and measure how fast it has
# its replicas back (a `kubernetes` probe); the lease, pod.kill and the probe need the chart's RBAC.
def pod_kill_drill(namespace: str) -> dict[str, Any]:
    available = {
        "type": "kubernetes",
        "name": "web-available",
        "check": "available_replicas",
        "kind": "Deployment",
        "workload": "web",
        "namespace": namespace,
        "min": 2,
        "timeout": "5s",
    }
    recovers = {
        "name": "web-recovers",
        "type": "recovery_window",
        "from": "fault_start",
        "max": "30s",
        "stable_for": "1s",
    }
    return web_pod_kill_drill(namespace, [available], [recovers], pods_namespace=namespace, grace_period="0s")


def gameday_doc(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "drillctl.dev/v1",
        "kind": "GameDay",
        "metadata": {"name": "weekly"},
        "spec": {
            "drills": ["../drills/*.yaml"],
            "schedule": "0 10 * * 2",
            "window": {"timezone": "Europe/Paris", "from": "09:00", "to": "12:00", "days": ["tue"]},
            "lease": {"enabled": True, "namespace": namespace, "duration": "15s"},
        },
    }


def full_values(namespace: str, clock_namespace: str) -> dict[str, Any]:
    """Every option on: a game day with its drill and runbook, a PVC, a Pushgateway, Toxiproxy, all RBAC."""
    return {
        "image": {"repository": "registry.example/drillctl", "tag": "1.2.3"},
        "gamedays": [
            {"name": "weekly", "gameday": gameday_doc(namespace), "args": ["--wait", "10m"]},
            {
                "name": "from-image",
                "file": "/opt/drillctl/drills/gamedays/release-rehearsal.yaml",
                "schedule": "0 3 * * *",
                "suspend": True,
            },
        ],
        "drills": {"web-pod-kill.yaml": yaml.safe_dump(pod_kill_drill(namespace))},
        "runbooks": {"web.md": RUNBOOK},
        "reports": {"persistence": {"enabled": True, "size": "2Gi"}},
        "metrics": {"pushgateway": {"url": "http://pushgateway.monitoring:9091"}},
        "toxiproxy": {"enabled": True, "proxyPorts": [18091]},
        "rbac": {
            "targetNamespaces": [namespace],
            "podKill": True,
            "podEviction": True,
            "ephemeralContainers": True,
            "probes": True,
            "nodes": {"read": True, "patch": True, "delete": True},
            "workloadClockSkew": True,
        },
        "nodeClockHelper": {"enabled": True, "namespace": clock_namespace},
        "cronJob": {"startingDeadlineSeconds": 300, "successfulJobsHistoryLimit": 2, "failedJobsHistoryLimit": 4},
    }


def test_helm_lint_default_and_full_values(helm: Path, tmp_path: Path) -> None:
    plain = subprocess.run([str(helm), "lint", "--strict", str(CHART)], capture_output=True, text=True, timeout=60)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    values = tmp_path / "full.yaml"
    values.write_text(yaml.safe_dump(full_values("chaos", "chaos-clock")))
    full = subprocess.run(
        [str(helm), "lint", "--strict", str(CHART), "-f", str(values)], capture_output=True, text=True, timeout=60
    )
    assert full.returncode == 0, full.stdout + full.stderr


def test_default_values_grant_the_lease_the_freeze_read_and_nothing_else(helm: Path, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, None)
    assert kinds(docs) == ["Role/gd-drillctl-lease", "RoleBinding/gd-drillctl-lease", "ServiceAccount/gd-drillctl"]
    assert {r["resources"][0] for r in rules(docs)} == {"leases", "configmaps"}
    assert [r for r in rules(docs) if "resourceNames" not in r] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]}
    ]
    named = [r for r in rules(docs) if "resourceNames" in r]
    assert named == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["drillctl-gameday"],
            "verbs": ["get", "update", "list", "watch"],
        },
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": ["drillctl-freeze"],
            "verbs": ["get", "list", "watch"],
        },
    ]


def test_full_values_render_the_cronjob_storage_metrics_toxiproxy_and_rbac(helm: Path, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, full_values("chaos", "chaos-clock"))
    cronjobs = {d["metadata"]["name"]: d for d in docs if d["kind"] == "CronJob"}
    assert set(cronjobs) == {"gd-drillctl-weekly", "gd-drillctl-from-image"}
    weekly = cronjobs["gd-drillctl-weekly"]["spec"]
    assert weekly["schedule"] == "0 10 * * 2" and weekly["timeZone"] == "Europe/Paris"
    assert weekly["concurrencyPolicy"] == "Forbid" and weekly["startingDeadlineSeconds"] == 300
    assert weekly["successfulJobsHistoryLimit"] == 2 and weekly["failedJobsHistoryLimit"] == 4
    assert cronjobs["gd-drillctl-from-image"]["spec"]["suspend"] is True
    pod = weekly["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"][:3] == ["gameday", "run", "/etc/drillctl/gamedays/weekly.yaml"]
    assert container["args"][-2:] == ["--wait", "10m"] and "--lease-namespace" in container["args"]
    assert {"name": "DRILLCTL_PUSHGATEWAY", "value": "http://pushgateway.monitoring:9091"} in container["env"]
    assert container["image"] == "registry.example/drillctl:1.2.3"
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["reports"]["persistentVolumeClaim"]["claimName"] == "gd-drillctl-reports"
    assert one(docs, "PersistentVolumeClaim")["spec"]["resources"]["requests"]["storage"] == "2Gi"
    paths = {i["path"] for i in volumes["files"]["configMap"]["items"]}
    assert paths == {"gamedays/weekly.yaml", "drills/web-pod-kill.yaml", "runbooks/web.md"}
    files = one(docs, "ConfigMap")["data"]
    assert yaml.safe_load(files["gameday-weekly.yaml"]) == gameday_doc("chaos")
    assert files["runbook-web.md"].strip() == RUNBOOK.strip()
    assert {f"{d['kind']}/{d['metadata']['name']}" for d in docs if "toxiproxy" in d["metadata"]["name"]} == {
        "Deployment/gd-drillctl-toxiproxy",
        "Service/gd-drillctl-toxiproxy",
    }
    clock_ns = [d for d in docs if d["kind"] == "Namespace"]
    assert [n["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] for n in clock_ns] == ["privileged"]
    for rule in rules(docs):
        assert "secrets" not in rule["resources"] and "*" not in rule["resources"] and "*" not in rule["verbs"]
    every_container = [c for d in docs if d["kind"] in ("CronJob", "Deployment") for c in _containers(d)]
    assert all(not c["securityContext"].get("privileged") for c in every_container)


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc["spec"]["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else doc["spec"]
    containers: list[dict[str, Any]] = spec["template"]["spec"]["containers"]
    return containers


def test_each_toggle_adds_only_its_own_permissions(helm: Path, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, {"rbac": {"podKill": True}})
    target = [r for r in rules(docs) if r["resources"] != ["leases"] and r.get("resourceNames") != ["drillctl-freeze"]]
    assert target == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "delete"]}]
    docs = render(helm, tmp_path, {"rbac": {"probes": True}})
    apps = [r for r in rules(docs) if r["apiGroups"] == ["apps"]]
    assert apps == [
        {"apiGroups": ["apps"], "resources": ["deployments", "statefulsets"], "verbs": ["get", "list", "watch"]}
    ]
    assert not [d for d in docs if d["kind"] in ("ClusterRole", "Namespace")]


def test_a_game_day_without_a_schedule_is_refused_by_the_chart(helm: Path, tmp_path: Path) -> None:
    values = tmp_path / "bad.yaml"
    doc = gameday_doc("chaos")
    del doc["spec"]["schedule"]
    values.write_text(yaml.safe_dump({"gamedays": [{"name": "weekly", "gameday": doc}]}))
    out = subprocess.run(
        [str(helm), "template", "gd", str(CHART), "-f", str(values)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode != 0 and "gamedays[weekly]: no schedule" in out.stderr


# --- against the real control plane -------------------------------------------------------------


@pytest.fixture
def namespace(kube_cluster: KubeCluster) -> Iterator[str]:
    name = f"gday-chart-{uuid.uuid4().hex[:6]}"
    api = kube_cluster.api_client()
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": name}}, _request_timeout=10)
    yield name
    rbac = client.RbacAuthorizationV1Api(api)
    for kind in ("cluster_role_binding", "cluster_role"):
        listed = getattr(rbac, f"list_{kind}")(
            label_selector=f"app.kubernetes.io/instance in (full-{name},plain-{name})"
        )
        for item in listed.items:
            getattr(rbac, f"delete_{kind}")(item.metadata.name, _request_timeout=10)
    for ns in (name, f"{name}-clock"):
        try:
            core.delete_namespace(ns, _request_timeout=10)
        except client.ApiException as e:
            if e.status != 404:
                raise


def can(
    kube_cluster: KubeCluster, sa: str, namespace: str, verb: str, resource: str, where: str | None, **extra: str
) -> bool:
    api = client.AuthorizationV1Api(kube_cluster.api_client())
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": f"system:serviceaccount:{namespace}:{sa}",
            "groups": ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"],
            "resourceAttributes": {"verb": verb, "resource": resource, "namespace": where, **extra},
        },
    }
    answer = api.create_subject_access_review(review, _request_timeout=10)
    return bool(answer.status.allowed)


def test_the_chart_applies_and_its_service_account_runs_a_game_day_with_its_own_token(
    kube_cluster: KubeCluster, helm: Path, namespace: str, tmp_path: Path
) -> None:
    clock = f"{namespace}-clock"
    full = render(helm, tmp_path, full_values(namespace, clock), namespace, release=f"full-{namespace}")
    plain = render(helm, tmp_path, None, namespace, release=f"plain-{namespace}")
    apply(kube_cluster, full + plain, namespace)

    api = kube_cluster.api_client()
    cron = client.BatchV1Api(api).read_namespaced_cron_job(f"full-{namespace}-drillctl-weekly", namespace)
    assert cron.spec.concurrency_policy == "Forbid" and cron.spec.schedule == "0 10 * * 2"
    assert cron.spec.time_zone == "Europe/Paris"

    sa = f"full-{namespace}-drillctl"
    lease = {"group": "coordination.k8s.io"}
    # What the configured drills and the lease need:
    for verb, resource, where, extra in [
        ("create", "leases", namespace, lease),
        ("update", "leases", namespace, {**lease, "name": "drillctl-gameday"}),
        ("watch", "leases", namespace, {**lease, "name": "drillctl-gameday"}),
        ("delete", "pods", namespace, {}),
        ("list", "pods", namespace, {}),
        ("create", "pods", namespace, {"subresource": "eviction"}),
        ("patch", "pods", namespace, {"subresource": "ephemeralcontainers"}),
        ("watch", "deployments", namespace, {"group": "apps"}),
        ("patch", "deployments", namespace, {"group": "apps"}),
        ("patch", "nodes", None, {}),
        ("delete", "nodes", None, {}),
        ("create", "pods", clock, {}),
    ]:
        assert can(kube_cluster, sa, namespace, verb, resource, where, **extra), f"{verb} {resource} {extra} in {where}"
    # What it must never do:
    for verb, resource, where, extra in [
        ("get", "secrets", namespace, {}),
        ("list", "secrets", None, {}),
        ("update", "leases", namespace, {**lease, "name": "someone-elses-lease"}),
        ("delete", "pods", "kube-system", {}),
        ("create", "pods", namespace, {}),  # only the node-clock namespace may get (privileged) pods
        ("delete", "namespaces", None, {}),
        ("create", "clusterrolebindings", None, {"group": "rbac.authorization.k8s.io"}),
        ("patch", "deployments", "kube-system", {"group": "apps"}),
        ("get", "configmaps", "kube-system", {}),
    ]:
        assert not can(kube_cluster, sa, namespace, verb, resource, where, **extra), f"{verb} {resource} in {where}"
    # What the Kubernetes fault drivers say they need (their own preflight checks these with SelfSubjectAccessReview):
    needed = [*pod_kill_permissions(namespace)]
    for mode in ("drain", "crash", "delete"):
        needed += node_loss_permissions(mode, [namespace], namespace)
    for p in needed:
        attributes = {"group": p.group, **({"subresource": p.subresource} if p.subresource else {})}
        assert can(kube_cluster, sa, namespace, p.verb, p.resource, p.namespace, **attributes), str(p)
    # With default values, the lease, the freeze to read, and nothing else:
    bare = f"plain-{namespace}-drillctl"
    assert can(kube_cluster, bare, namespace, "create", "leases", namespace, **lease)
    for verb in ("get", "list", "watch"):
        assert can(kube_cluster, bare, namespace, verb, "configmaps", namespace, name="drillctl-freeze"), verb
    for verb, resource, where, extra in [
        ("create", "configmaps", namespace, {}),
        ("update", "configmaps", namespace, {"name": "drillctl-freeze"}),
        ("delete", "configmaps", namespace, {"name": "drillctl-freeze"}),
        ("get", "configmaps", namespace, {"name": "someone-elses-config"}),
        ("list", "configmaps", namespace, {}),
        ("delete", "pods", namespace, {}),
        ("list", "pods", None, {}),
        ("patch", "nodes", None, {}),
        ("get", "nodes", None, {}),
        ("patch", "deployments", namespace, {"group": "apps"}),
        ("get", "secrets", namespace, {}),
    ]:
        assert not can(kube_cluster, bare, namespace, verb, resource, where, **extra), f"{verb} {resource}"

    # In practice: the game day and drill from the chart's values, run with the ServiceAccount's own token.
    make_web(kube_cluster, namespace)
    kubeconfig = sa_kubeconfig(kube_cluster, namespace, sa, tmp_path)
    root = tmp_path / "etc-drillctl"
    for folder, files in (
        ("drills", {"web-pod-kill.yaml": yaml.safe_dump(pod_kill_drill(namespace))}),
        ("runbooks", {"web.md": RUNBOOK}),
        ("gamedays", {"weekly.yaml": yaml.safe_dump(gameday_doc(namespace))}),
    ):
        (root / folder).mkdir(parents=True)
        for name, text in files.items():
            (root / folder / name).write_text(text)
    result = subprocess.run(
        [
            DRILLCTL,
            "gameday",
            "run",
            str(root / "gamedays" / "weekly.yaml"),
            "--force",
            "--kubeconfig",
            str(kubeconfig),
            "--lease-namespace",
            namespace,
            "--runs-dir",
            str(tmp_path / "runs"),
            "--output",
            "json",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    doc = json.loads(result.stdout)
    assert doc["lease"]["namespace"] == namespace and doc["lease"]["identity"].startswith("weekly@")
    (drill,) = doc["drills"]
    assert drill["status"] == "passed" and drill["slas_passed"] == 1
    (recovery,) = drill["recovery"]
    print(
        f"web-pod-kill as the chart's ServiceAccount: impact {recovery['time_to_impact']}s, "
        f"recovered {recovery['time_to_recover']}s"
    )
    assert recovery["time_to_impact"] is not None  # the pod really went: available replicas dropped
    held = client.CoordinationV1Api(api).read_namespaced_lease("drillctl-gameday", namespace)
    assert not held.spec.holder_identity  # released at the end


def make_web(kube_cluster: KubeCluster, namespace: str) -> None:
    """Deployment `web`, 2 replicas on the KWOK nodes, awaited until both are available."""
    apps = client.AppsV1Api(kube_cluster.api_client())
    labels = {"app": "web"}
    apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "web", "labels": labels},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [{"name": "web", "image": "registry.example/web:1"}],
                    },
                },
            },
        },
        _request_timeout=10,
    )
    deadline = time.monotonic() + 90
    while (apps.read_namespaced_deployment("web", namespace, _request_timeout=10).status.available_replicas or 0) < 2:
        assert time.monotonic() < deadline, "deployment web never had 2 available replicas"
        time.sleep(0.2)


def sa_kubeconfig(kube_cluster: KubeCluster, namespace: str, sa: str, tmp_path: Path) -> Path:
    """A kubeconfig holding nothing but a TokenRequest token of the ServiceAccount (10 minutes)."""
    core = client.CoreV1Api(kube_cluster.api_client())
    token = core.create_namespaced_service_account_token(
        sa, namespace, {"spec": {"expirationSeconds": 600}}, _request_timeout=10
    ).status.token
    admin = yaml.safe_load(kube_cluster.kubeconfig.read_text())
    cluster = admin["clusters"][0]["cluster"]
    ca = (
        cluster.get("certificate-authority-data")
        or base64.b64encode(Path(cluster["certificate-authority"]).read_bytes()).decode()
    )
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": cluster["server"], "certificate-authority-data": ca}}],
        "users": [{"name": sa, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "test", "user": sa, "namespace": namespace}}],
        "current-context": "sa",
    }
    path = tmp_path / "sa-kubeconfig"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path
