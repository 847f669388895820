"""The postgres-failover drill N times per replication mode against a real Patroni cluster: drillctl's recovery
window beside the truth measured on its own (tests/stateful/truth.py), and, for async, lost writes as the test
counts them beside the checker's count. One fresh cluster per run.

  .venv/bin/python bench/postgres_failover.py --runs 10 [--replication sync|async|both]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.patroni import patroni_cluster
from tests.stateful.test_postgres_failover import drill_with_truth, final_table
from tests.stateful.truth import acknowledged_writes, lost_writes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--replication", choices=["sync", "async", "both"], default="both")
    args = parser.parse_args()
    modes = ["sync", "async"] if args.replication == "both" else [args.replication]
    for mode in modes:
        for n in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp, patroni_cluster(mode) as cluster:
                _, report, run_dir, figures = drill_with_truth(cluster, Path(tmp))
                workload = report["workload"]
                assert isinstance(workload, dict)
                row = {"mode": mode, "run": n + 1, **figures, "checker_lost": workload["lost"]}
                if mode == "async":
                    acked = acknowledged_writes(run_dir / "operations.bin")
                    row["test_counted_lost"] = lost_writes(acked, final_table(cluster.dsn()))
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
