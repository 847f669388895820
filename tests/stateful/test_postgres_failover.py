"""The shipped postgres-failover drill against a real Patroni cluster, checked against the truth measured on its
own (tests/stateful/truth.py): synchronous replication loses nothing, asynchronous replication behind a stalled
link loses acknowledged writes and the checker counts exactly what the test counts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.fixtures.patroni import PatroniCluster, patroni_cluster, shipped_drill
from tests.stateful.truth import (
    acknowledged_writes,
    lost_writes,
    patroni_leader,
    postgres_writes,
    probe_cost,
    run_against_truth,
    watch_failover,
)

INTERVAL = 0.2
"""The drill's sampling interval."""
PSQL = "/usr/lib/postgresql/15/bin/psql"


def drill_with_truth(cluster: PatroniCluster, tmp_path: Path) -> tuple[int, dict[str, Any], Path, dict[str, float]]:
    repo = tmp_path / "repo"
    drill = shipped_drill(cluster, repo)
    rest = [cluster.rest(n) for n in (1, 2, 3)]
    dsn = cluster.dsn()
    cost = probe_cost([PSQL, "-X", "-qAt", "-d", dsn, "-c", "SELECT txid_current()"], repo)
    old = patroni_leader(rest)
    assert old is not None
    pid = int((cluster.folder / old / "data" / "postmaster.pid").read_text().split()[0])
    truth = watch_failover(pid, old, lambda: patroni_leader(rest), postgres_writes(dsn))
    return run_against_truth(drill, tmp_path / "elsewhere", truth, "fails-over-within", INTERVAL, cost)


def final_table(dsn: str) -> dict[int, int]:
    with psycopg.connect(dsn, autocommit=True) as connection:
        rows = connection.execute("SELECT key, value FROM drillctl_workload").fetchall()
    return {int(key.rsplit("/", 1)[1]): int(value) for key, value in rows}


@pytest.mark.timeout(300)
def test_synchronous_replication_fails_over_and_loses_nothing(tmp_path: Path) -> None:
    with patroni_cluster("sync") as cluster:
        code, report, _, _ = drill_with_truth(cluster, tmp_path)
    workload = report["workload"]
    assert code == 0, json.dumps(report["slas"], indent=1)
    assert workload["lost"] == 0 and workload["verified"] and workload["acknowledged"] > 300


@pytest.mark.timeout(300)
def test_asynchronous_replication_behind_a_stalled_link_loses_what_the_checker_counts(tmp_path: Path) -> None:
    with patroni_cluster("async") as cluster:
        code, report, run_dir, _ = drill_with_truth(cluster, tmp_path)
        counted = lost_writes(acknowledged_writes(run_dir / "operations.bin"), final_table(cluster.dsn()))
    workload = report["workload"]
    print(json.dumps({"test_counted_lost": counted, "checker_lost": workload["lost"]}))
    assert code == 1 and counted > 0
    assert workload["lost"] == counted
    slas = {s["name"]: s for s in report["slas"]}
    assert not slas["no-lost-writes"]["passed"] and slas["fails-over-within"]["passed"]
