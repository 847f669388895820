"""The shipped postgres-failover drill against a real Patroni cluster, checked against the truth measured on its
own (tests/stateful/truth.py): synchronous replication loses nothing, asynchronous replication behind a stalled
link loses acknowledged writes and the checker counts exactly what the test counts."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from tests.fixtures.patroni import PatroniCluster, patroni_cluster, shipped_drill
from tests.stateful.truth import acknowledged_writes, leader_of, lost_writes, watch_failover
from tests.support import DRILLCTL, _env, report_of, run_dirs

INTERVAL = 0.2
"""The drill's sampling interval."""
PSQL = "/usr/lib/postgresql/15/bin/psql"


def _probe_cost(dsn: str) -> float:
    """What one sample of the drill's probe costs (psql started, connected, one write), the slowest of three."""
    costs = []
    for _ in range(3):
        began = time.monotonic()
        subprocess.run(
            [PSQL, "-X", "-qAt", "-d", dsn, "-c", "SELECT txid_current()"],
            check=True, timeout=10, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        costs.append(time.monotonic() - began)
    return max(costs)


def drill_with_truth(cluster: PatroniCluster, tmp_path: Path) -> tuple[int, dict[str, object], Path, dict[str, float]]:
    drill = shipped_drill(cluster, tmp_path / "repo")
    rest = [cluster.rest(n) for n in (1, 2, 3)]
    dsn = cluster.dsn()
    cost = _probe_cost(dsn)
    old = leader_of(rest)
    assert old is not None
    pid = int((cluster.folder / old / "data" / "postmaster.pid").read_text().split()[0])
    truth = watch_failover(pid, old, rest, dsn)
    runs = tmp_path / "runs"
    try:
        done = subprocess.run(
            [DRILLCTL, "run", str(drill), "--runs-dir", str(runs), "--quiet"],
            capture_output=True, text=True, env=_env(), timeout=150,
        )  # fmt: skip
    finally:
        truth.stop.set()
    assert done.returncode in (0, 1), done.stdout + done.stderr
    report = report_of(runs)
    (run_dir,) = run_dirs(runs)
    window = next(s for s in report["slas"] if s["name"] == "fails-over-within")["measured"]
    assert truth.killed_at is not None and truth.new_leader_at is not None
    figures = {
        "drillctl_window": window,
        "truth_window": truth.window(),
        "new_leader_after_kill": truth.new_leader_at - truth.killed_at,
        "probe_cost": cost,
    }
    print(json.dumps(figures))
    # the new primary appeared before (or as) the first write after the kill was acknowledged, seconds after it
    assert 1.0 < figures["new_leader_after_kill"] <= figures["truth_window"] + 0.1
    # drillctl's recovery window agrees with the truth within one sampling interval plus the probe's own cost
    # (and the write loop's spacing, 20 ms, and a margin for a loaded machine)
    assert abs(window - figures["truth_window"]) <= INTERVAL + cost + 0.3, figures
    return done.returncode, report, run_dir, figures


def _final_table(dsn: str) -> dict[int, int]:
    with psycopg.connect(dsn, autocommit=True) as connection:
        rows = connection.execute("SELECT key, value FROM drillctl_workload").fetchall()
    return {int(key.rsplit("/", 1)[1]): int(value) for key, value in rows}


@pytest.mark.timeout(300)
def test_synchronous_replication_fails_over_and_loses_nothing(tmp_path: Path) -> None:
    with patroni_cluster("sync") as cluster:
        code, report, _, _ = drill_with_truth(cluster, tmp_path)
        workload = report["workload"]
        assert isinstance(workload, dict)
        assert code == 0, json.dumps(report["slas"], indent=1)
        assert workload["lost"] == 0 and workload["verified"] and workload["acknowledged"] > 300


@pytest.mark.timeout(300)
def test_asynchronous_replication_behind_a_stalled_link_loses_what_the_checker_counts(tmp_path: Path) -> None:
    with patroni_cluster("async") as cluster:
        code, report, run_dir, _ = drill_with_truth(cluster, tmp_path)
        workload = report["workload"]
        assert isinstance(workload, dict)
        counted = lost_writes(acknowledged_writes(run_dir / "operations.bin"), _final_table(cluster.dsn()))
        print(json.dumps({"test_counted_lost": counted, "checker_lost": workload["lost"]}))
        assert code == 1 and counted > 0
        assert workload["lost"] == counted
        slas = {s["name"]: s for s in report["slas"]}
        assert not slas["no-lost-writes"]["passed"] and slas["fails-over-within"]["passed"]
