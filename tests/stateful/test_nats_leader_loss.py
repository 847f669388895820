"""The shipped nats-jetstream-leader-loss drill against a real three-server JetStream cluster: the stream leader
killed, no acknowledged publish lost, and drillctl's recovery window against the truth measured on its own."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.nats import NatsCluster, nats_cluster, shipped_drill
from tests.stateful.truth import nats_writes, probe_cost, run_against_truth, stream_leader, watch_failover

INTERVAL = 0.2
"""The drill's sampling interval."""


def drill_with_truth(cluster: NatsCluster, tmp_path: Path) -> tuple[int, dict[str, Any], Path, dict[str, float]]:
    repo = tmp_path / "repo"
    drill = shipped_drill(cluster, repo)
    publish = [sys.executable, "../../demo/stateful/nats_cluster.py", "publish", "--base-port", str(cluster.base)]
    cost = probe_cost(publish, drill.parent)
    old = stream_leader(cluster.monitors())
    assert old is not None
    truth = watch_failover(
        cluster.pid(old), old, lambda: stream_leader(cluster.monitors()), nats_writes(cluster.servers())
    )
    code, report, run_dir, figures = run_against_truth(
        drill, tmp_path / "elsewhere", truth, "new-leader-within", INTERVAL, cost
    )
    return code, report, run_dir, figures


@pytest.mark.timeout(240)
def test_the_stream_leader_lost_loses_no_acknowledged_publish(tmp_path: Path) -> None:
    with nats_cluster(tmp_path / "cluster") as cluster:
        code, report, _, _ = drill_with_truth(cluster, tmp_path)
    workload = report["workload"]
    assert code == 0, json.dumps(report["slas"], indent=1)
    assert workload["lost"] == 0 and workload["verified"] and workload["acknowledged"] > 300
