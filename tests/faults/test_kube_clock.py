"""clock.skew@kubernetes against the real control plane (kube-apiserver, controller-manager, KWOK).

KWOK runs no containers, so the tests check what the API shows: the patched pod template and the
new ReplicaSet it rolls out, the exact template after revert, the helper pod's spec and its
deletion. The helper's clock script is run for real under /bin/sh with a stand-in `date` that keeps
a fake clock in a file: stepping this machine's real clock in a test is not possible (or wanted).
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import structlog
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from orchestrator.errors import PreflightError, SpecError
from orchestrator.faults.kube_clock import DEFAULT_LIBRARY, KubeClockSkewDriver
from orchestrator.kube.access import KubeAccess
from orchestrator.kube.clock_helper import NODE_CLOCK_SCRIPT
from orchestrator.kube.marks import EXPIRES_AT, FAULT, PRIOR_STATE, RUN_ID
from orchestrator.kube.objects import shell_command
from orchestrator.loading import load_drill
from orchestrator.model.spec import ClockSkewFault, KubernetesTargets
from orchestrator.model.undo import Undo
from tests.fixtures.kube import KubeCluster
from tests.kube.support import drillctl_marks, from_record, inject, kube_api, namespace, raw, wait_for
from tests.support import drill, write

__all__ = ["kube_api", "namespace"]

RUN = "kc-clock-20260101T000000Z"


def fault(**fields: Any) -> ClockSkewFault:
    return ClockSkewFault.model_validate({"type": "clock.skew", "name": "skew", "duration": "30s", **fields})


def access(kube_cluster: KubeCluster, namespace: str, **limits: Any) -> KubeAccess:
    return KubeAccess(kubeconfig=str(kube_cluster.kubeconfig), namespace=namespace, limits=KubernetesTargets(**limits))


def env_of(workload: dict[str, Any], container: str) -> list[dict[str, Any]] | None:
    found = next(c for c in workload["spec"]["template"]["spec"]["containers"] if c["name"] == container)
    env: list[dict[str, Any]] | None = found.get("env")
    return env


def create_deployment(apps: client.AppsV1Api, namespace: str, name: str) -> None:
    labels = {"app": name}
    apps.create_namespaced_deployment(
        namespace,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "annotations": {"team": "payments"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "terminationGracePeriodSeconds": 1,
                        "containers": [
                            {
                                "name": "app",
                                "image": "registry.invalid/drillctl/app:1",
                                "env": [
                                    {"name": "MODE", "value": "live"},
                                    {"name": "LD_PRELOAD", "value": "/opt/x.so"},
                                ],
                            },
                            {"name": "sidecar", "image": "registry.invalid/drillctl/sidecar:1"},
                        ],
                    },
                },
            },
        },
    )


def replica_sets(apps: client.AppsV1Api, namespace: str, name: str) -> list[str]:
    return sorted(
        rs.metadata.name for rs in apps.list_namespaced_replica_set(namespace, label_selector=f"app={name}").items
    )


def test_workload_skew_patches_the_template_rolls_out_and_revert_restores_it_exactly(
    kube_cluster: KubeCluster, kube_api: client.ApiClient, namespace: str
) -> None:
    apps = client.AppsV1Api(kube_api)
    create_deployment(apps, namespace, "web")
    wait_for("the first ReplicaSet", lambda: replica_sets(apps, namespace, "web"))
    before = raw(apps.read_namespaced_deployment, "web", namespace)
    first_rs = replica_sets(apps, namespace, "web")

    driver = KubeClockSkewDriver(access(kube_cluster, namespace), seed=3)
    spec = fault(scope="workload", workload={"kind": "Deployment", "name": "web", "container": "app"}, offset="+90s")
    assert "rolling restart" in driver.describe(spec)
    plan = asyncio.run(driver.plan(spec))
    assert plan.refusals == () and any("rolling restart" in e for e in plan.effects), plan

    async def inject() -> Undo:
        await driver.preflight(spec)
        undo = await driver.prepare(spec, f"{RUN}/skew")
        await driver.inject(spec, undo)
        return undo

    undo = asyncio.run(inject())
    skewed = raw(apps.read_namespaced_deployment, "web", namespace)
    assert env_of(skewed, "app") == [
        {"name": "MODE", "value": "live"},
        {"name": "LD_PRELOAD", "value": f"{DEFAULT_LIBRARY}:/opt/x.so"},
        {"name": "FAKETIME", "value": "+90"},
        {"name": "FAKETIME_DONT_FAKE_MONOTONIC", "value": "1"},
    ]
    assert env_of(skewed, "sidecar") is None, "only the named container is skewed"
    marks = drillctl_marks(skewed)
    assert marks[RUN_ID] == RUN and marks[FAULT] == "skew" and EXPIRES_AT in marks
    assert json.loads(marks[PRIOR_STATE])["env"] == {"app": env_of(before, "app")}
    assert skewed["metadata"]["annotations"]["team"] == "payments"
    rolled = wait_for(
        "a new ReplicaSet for the skewed template",
        lambda: (r := replica_sets(apps, namespace, "web")) != first_rs and r,
    )
    assert len(rolled) == 2

    asyncio.run(driver.revert(from_record(undo)))
    after = raw(apps.read_namespaced_deployment, "web", namespace)
    assert after["spec"]["template"] == before["spec"]["template"]
    assert not drillctl_marks(after) and after["metadata"]["annotations"]["team"] == "payments"
    generation = after["metadata"]["generation"]

    asyncio.run(driver.revert(from_record(undo)))
    again = raw(apps.read_namespaced_deployment, "web", namespace)
    assert again["metadata"]["generation"] == generation, "a second revert changes nothing"
    assert again["spec"]["template"] == before["spec"]["template"]


def test_workload_revert_keeps_a_variable_changed_meanwhile_and_survives_a_vanished_workload(
    kube_cluster: KubeCluster, kube_api: client.ApiClient, namespace: str
) -> None:
    apps = client.AppsV1Api(kube_api)
    create_deployment(apps, namespace, "api")
    before = raw(apps.read_namespaced_deployment, "api", namespace)
    driver = KubeClockSkewDriver(access(kube_cluster, namespace), seed=3)
    spec = fault(scope="workload", workload={"kind": "Deployment", "name": "api"}, offset="-5m", drift=1.5)

    undo = inject(driver, spec, f"{RUN}/skew")
    skewed = raw(apps.read_namespaced_deployment, "api", namespace)
    assert {"name": "FAKETIME", "value": "-300 x1.5"} in (env_of(skewed, "sidecar") or [])
    # Someone else sets FAKETIME on the sidecar while the fault holds.
    sidecar = [c["name"] for c in skewed["spec"]["template"]["spec"]["containers"]].index("sidecar")
    edited = copy.deepcopy(env_of(skewed, "sidecar") or [])
    for entry in edited:
        if entry["name"] == "FAKETIME":
            entry["value"] = "+1h"
    apps.patch_namespaced_deployment(
        "api",
        namespace,
        [{"op": "replace", "path": f"/spec/template/spec/containers/{sidecar}/env", "value": edited}],
        _content_type="application/json-patch+json",
    )

    with structlog.testing.capture_logs() as logs:
        asyncio.run(driver.revert(from_record(undo)))
    after = raw(apps.read_namespaced_deployment, "api", namespace)
    assert env_of(after, "app") == env_of(before, "app"), "untouched by anyone else: restored exactly"
    assert env_of(after, "sidecar") == [{"name": "FAKETIME", "value": "+1h"}], "only drillctl's own values go"
    conflicts = [e for e in logs if e["event"] == "revert_conflict"]
    assert conflicts and "FAKETIME was changed meanwhile" in conflicts[0]["conflicts"][0]
    assert not drillctl_marks(after)

    apps.delete_namespaced_deployment("api", namespace)
    wait_for("the Deployment to be gone", lambda: not apps.list_namespaced_deployment(namespace).items)
    with structlog.testing.capture_logs() as logs:
        asyncio.run(driver.revert(from_record(undo)))
    assert any(e["event"] == "revert_target_vanished" for e in logs)


def test_a_statefulset_is_skewed_too_and_a_missing_one_is_refused_in_preflight(
    kube_cluster: KubeCluster, kube_api: client.ApiClient, namespace: str
) -> None:
    apps = client.AppsV1Api(kube_api)
    labels = {"app": "db"}
    apps.create_namespaced_stateful_set(
        namespace,
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "db"},
            "spec": {
                "replicas": 1,
                "serviceName": "db",
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "db", "image": "registry.invalid/drillctl/db:1"}]},
                },
            },
        },
    )
    before = raw(apps.read_namespaced_stateful_set, "db", namespace)
    driver = KubeClockSkewDriver(access(kube_cluster, namespace), seed=3)
    spec = fault(scope="workload", workload={"kind": "StatefulSet", "name": "db"}, offset="+30s", library="/lib/ft.so")

    async def cycle() -> None:
        undo = await driver.prepare(spec, f"{RUN}/skew")
        await driver.inject(spec, undo)
        skewed = raw(apps.read_namespaced_stateful_set, "db", namespace)
        assert {"name": "LD_PRELOAD", "value": "/lib/ft.so"} in (env_of(skewed, "db") or [])
        await driver.revert(from_record(undo))

    asyncio.run(cycle())
    after = raw(apps.read_namespaced_stateful_set, "db", namespace)
    assert after["spec"]["template"] == before["spec"]["template"]
    assert "env" not in after["spec"]["template"]["spec"]["containers"][0]

    missing = fault(scope="workload", workload={"kind": "StatefulSet", "name": "nope"}, offset="+30s")
    with pytest.raises(PreflightError, match=r"StatefulSet .*/nope not found"):
        asyncio.run(driver.preflight(missing))


def test_node_scope_runs_a_privileged_helper_pod_and_revert_deletes_it(
    kube_cluster: KubeCluster, kube_api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    node = "kwok-node-0"
    driver = KubeClockSkewDriver(
        access(kube_cluster, namespace, allow_node_clock_change=True, helper_image="registry.invalid/helper:1"), seed=3
    )
    spec = fault(scope="node", nodes={"names": [node]}, offset="+90s", duration="20s")

    async def inject() -> Undo:
        await driver.preflight(spec)
        undo = await driver.prepare(spec, f"{RUN}/skew")
        await driver.inject(spec, undo)
        return undo

    undo = asyncio.run(inject())
    name = undo.state["helpers"][0]["pod"]
    pod = raw(core.read_namespaced_pod, name, namespace)
    assert pod["spec"]["nodeName"] == node
    assert pod["spec"]["activeDeadlineSeconds"] == 20 + 30, "ends by itself: duration + margin"
    assert pod["spec"]["restartPolicy"] == "Never"
    assert {"operator": "Exists"} in pod["spec"]["tolerations"]
    container = pod["spec"]["containers"][0]
    assert container["image"] == "registry.invalid/helper:1"
    assert container["securityContext"]["privileged"] is True
    assert container["command"] == shell_command(NODE_CLOCK_SCRIPT)
    assert {"name": "OFFSET_NS", "value": str(90 * 10**9)} in container["env"]
    assert {"name": "HOLD_CS", "value": "2000"} in container["env"], "steps back by itself after the duration"
    assert drillctl_marks(pod)[RUN_ID] == RUN

    asyncio.run(driver.revert(from_record(undo)))
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_pod(name, namespace)
    assert gone.value.status == 404
    asyncio.run(driver.revert(from_record(undo)))


def test_node_scope_is_refused_without_the_opt_in(kube_cluster: KubeCluster, namespace: str, tmp_path: Path) -> None:
    spec = fault(scope="node", nodes={"names": ["kwok-node-0"]}, offset="+90s")
    driver = KubeClockSkewDriver(access(kube_cluster, namespace), seed=3)
    with pytest.raises(PreflightError, match="allow_node_clock_change: true"):
        asyncio.run(driver.preflight(spec))
    with pytest.raises(PreflightError, match="allow_node_clock_change"):
        asyncio.run(driver.prepare(spec, f"{RUN}/skew"))

    probe = {"type": "tcp", "name": "api", "host": "127.0.0.1", "port": 1}
    document = drill(
        steady_state={"probes": [probe]},
        targets={"kubernetes": {"namespace": namespace}},
        faults=[
            {
                "name": "skew",
                "type": "clock.skew",
                "scope": "node",
                "nodes": {"names": ["kwok-node-0"]},
                "offset": "+90s",
                "drift": 1.1,
                "duration": "5s",
            }
        ],
    )
    path = write(tmp_path, document)
    with pytest.raises(SpecError) as refused:
        load_drill(path)
    issues = {i.field: i for i in refused.value.issues}
    assert "allow_node_clock_change: true" in issues["spec.faults[0].scope"].message
    assert issues["spec.faults[0].scope"].line is not None
    assert "spec.faults[0].drift" in issues


# --- the helper's clock script, under a stand-in `date` ---------------------------------------------

FAKE_DATE = r"""#!/bin/sh
# A clock kept as an offset (ns) from the real one in $FAKE_CLOCK; `date -s @N` sets it.
off=$(cat "$FAKE_CLOCK")
case "$1" in
  -s) n=${2#@}; echo $(( n * 1000000000 - $(/bin/date +%s%N) )) > "$FAKE_CLOCK" ;;
  +%s%N) echo $(( $(/bin/date +%s%N) + off )) ;;
  +%s) echo $(( ($(/bin/date +%s%N) + off) / 1000000000 )) ;;
esac
"""


def offset_s(clock: Path) -> float:
    return int(clock.read_text()) / 1e9


def start_script(tmp_path: Path, offset_ns: int, hold: str) -> tuple[subprocess.Popen[str], Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "date").write_text(FAKE_DATE)
    (bin_dir / "date").chmod(0o755)
    clock = tmp_path / "clock"
    clock.write_text("0")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_CLOCK": str(clock)}
    env |= {"OFFSET_NS": str(offset_ns), "HOLD_CS": hold}
    proc = subprocess.Popen(["sh", "-c", NODE_CLOCK_SCRIPT], env=env, stdout=subprocess.PIPE, text=True)
    return proc, clock


@pytest.mark.parametrize("ending", ["sigterm", "duration"])
def test_clock_script_steps_by_the_offset_and_back_when_stopped_or_done(tmp_path: Path, ending: str) -> None:
    # Half a second past a whole one: a step truncated or rounded to whole seconds is 0.5 s off, while
    # the step's own lateness (one fork of `date`, several under the stand-in) stays well inside 0.3 s
    # on a loaded 2-core machine. Lateness only ever shortens the step, and adds up over the two.
    proc, clock = start_script(tmp_path, 90 * 10**9 + 500_000_000, "200" if ending == "duration" else "6000")
    try:
        assert proc.stdout is not None
        assert "clock stepped by" in proc.stdout.readline()
        assert 90.2 <= offset_s(clock) <= 90.5 + 0.01, "stepped by the offset, not by whole seconds"
        if ending == "sigterm":
            time.sleep(0.5)
            proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert ("stopped" if ending == "sigterm" else "duration over") in out
    assert -0.45 <= offset_s(clock) <= 0.01, "stepped back by the offset, time passed kept"
