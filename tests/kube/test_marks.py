"""The marks and patches of node.loss, as pure functions of the API's JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator.kube.marks import (
    EXPIRES_AT,
    PRIOR_STATE,
    RUN_ID,
    TAINT_KEY,
    Mark,
    evictable,
    loss_patch,
    node_manifest,
    node_prior,
    restore_patch,
    split_step,
)

INFRA = {"key": "dedicated", "value": "infra", "effect": "NoSchedule"}


def node(unschedulable: bool = False, taints: list[dict[str, str]] | None = None, **annotations: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "n1",
            "uid": "u1",
            "resourceVersion": "42",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "managedFields": [{}],
            "labels": {"zone": "a"},
            "annotations": {"kwok.x-k8s.io/node": "fake", **annotations},
        },
        "spec": {"unschedulable": unschedulable, "taints": taints or []},
        "status": {"capacity": {"cpu": "4"}, "allocatable": {"cpu": "4"}, "conditions": [{"type": "Ready"}]},
    }


def mark(prior: dict[str, Any] | None = None) -> Mark:
    return Mark("run-1", "lose", datetime(2030, 1, 1, tzinfo=UTC), prior or {"unschedulable": False, "taints": []})


def test_mark_round_trips_through_annotations() -> None:
    m = mark({"unschedulable": True, "taints": [INFRA]})
    annotations = m.annotations()
    assert annotations[RUN_ID] == "run-1" and annotations[EXPIRES_AT] == "2030-01-01T00:00:00+00:00"
    assert json.loads(annotations[PRIOR_STATE]) == {"unschedulable": True, "taints": [INFRA]}
    assert Mark.read(annotations) == m
    assert Mark.read({"other": "x"}) is None and Mark.read({RUN_ID: "r", EXPIRES_AT: "not a time"}) is None
    assert m.expired(datetime(2030, 1, 1, tzinfo=UTC)) and not m.expired(
        datetime(2030, 1, 1, tzinfo=UTC) - timedelta(1)
    )
    assert split_step("drill-20260101T000000Z/lose") == ("drill-20260101T000000Z", "lose")


def test_crash_patch_cordons_taints_marks_and_carries_the_resource_version() -> None:
    patch = loss_patch(node(taints=[INFRA]), taint=True, mark=mark())
    assert patch["metadata"]["resourceVersion"] == "42"
    assert patch["spec"] == {
        "unschedulable": True,
        "taints": [INFRA, {"key": TAINT_KEY, "value": "lose", "effect": "NoExecute"}],
    }
    assert RUN_ID in patch["metadata"]["annotations"]
    assert "taints" not in loss_patch(node(), taint=False, mark=mark())["spec"], "drain only cordons"


def test_restore_removes_only_what_drillctl_added() -> None:
    crashed = node(True, [INFRA, {"key": TAINT_KEY, "effect": "NoExecute"}], **mark().annotations())
    patch = restore_patch(crashed, node_prior(node(taints=[INFRA])))
    assert patch is not None
    assert patch["spec"] == {"taints": [INFRA], "unschedulable": None}
    assert patch["metadata"]["annotations"] == {
        RUN_ID: None,
        "drillctl.io/fault": None,
        EXPIRES_AT: None,
        PRIOR_STATE: None,
    }
    was_cordoned = restore_patch(crashed, {"unschedulable": True, "taints": [INFRA]})
    assert was_cordoned is not None and "unschedulable" not in was_cordoned["spec"]
    assert restore_patch(node(taints=[INFRA]), {"unschedulable": False}) is None, "nothing left: idempotent"


def test_manifest_drops_server_fields_and_marks() -> None:
    manifest = node_manifest(node(True, [INFRA], **mark().annotations()))
    assert set(manifest["metadata"]) == {"name", "labels", "annotations"}
    assert manifest["metadata"]["annotations"] == {"kwok.x-k8s.io/node": "fake"}
    assert manifest["status"] == {"capacity": {"cpu": "4"}, "allocatable": {"cpu": "4"}}
    assert manifest["spec"]["taints"] == [INFRA]


def test_drain_spares_daemonset_and_mirror_pods() -> None:
    assert evictable({"metadata": {"ownerReferences": [{"kind": "ReplicaSet"}]}})
    assert not evictable({"metadata": {"ownerReferences": [{"kind": "DaemonSet"}]}})
    assert not evictable({"metadata": {"annotations": {"kubernetes.io/config.mirror": "x"}}})
