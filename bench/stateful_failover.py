"""The shipped stateful drills N times each against real systems, one fresh cluster per run: drillctl's recovery
window beside the truth measured on its own (tests/stateful/truth.py: the kill through a pidfd, the new leader
from the system's API, the first acknowledged write of a loop of its own), and for asynchronous PostgreSQL the
lost writes as the test counts them beside the checker's count. One JSON line per run.

  .venv/bin/python bench/stateful_failover.py --runs 10 [--system postgres-sync postgres-async nats]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.nats import nats_cluster
from tests.fixtures.patroni import patroni_cluster
from tests.stateful import test_nats_leader_loss, test_postgres_failover
from tests.stateful.truth import acknowledged_writes, lost_writes

SYSTEMS = ("postgres-sync", "postgres-async", "nats")


def one_run(system: str, tmp: Path) -> dict[str, object]:
    if system == "nats":
        with nats_cluster(tmp / "cluster") as cluster:
            _, report, _, figures = test_nats_leader_loss.drill_with_truth(cluster, tmp)
        return {**figures, "checker_lost": report["workload"]["lost"]}
    with patroni_cluster(system.removeprefix("postgres-")) as cluster:
        _, report, run_dir, figures = test_postgres_failover.drill_with_truth(cluster, tmp)
        row: dict[str, object] = {**figures, "checker_lost": report["workload"]["lost"]}
        if system == "postgres-async":
            final = test_postgres_failover.final_table(cluster.dsn())
            row["test_counted_lost"] = lost_writes(acknowledged_writes(run_dir / "operations.bin"), final)
        return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--system", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    args = parser.parse_args()
    for system in args.system:
        for n in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                row = one_run(system, Path(tmp))
            print(json.dumps({"system": system, "run": n + 1, **row}), flush=True)


if __name__ == "__main__":
    main()
