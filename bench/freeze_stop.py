"""How fast `drillctl freeze` stops running drills: 1 and 3 runs at once, each mid-fault (a 50 s latency toxic).

Real `drillctl run` processes, each with its upstream and a private toxiproxy-server (`toxiproxy.url: auto`). For each
round, once every run has injected its toxic, `drillctl freeze -o json` is run. Printed per round: the freeze
command's own time, each run's time from the request to its report written (`waited`: the run closed its control
FIFO), each fault's revert after the freeze (the journal's `reverted` entry, wall clock), the runs' exit codes and
the journals left unsettled. Nothing is asserted: these are figures.

    .venv/bin/python bench/freeze_stop.py [rounds per size, default 5]
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from orchestrator.journal import read_entries  # noqa: E402
from orchestrator.recovery import unsettled  # noqa: E402
from tests.support import DRILLCTL, proxied_upstream_drill, write  # noqa: E402

SIZES = (1, 3)


def start_runs(folder: Path, count: int) -> tuple[Path, list[subprocess.Popen[bytes]]]:
    runs = folder / "runs"
    procs = []
    for i in range(count):
        document = proxied_upstream_drill(
            f"frozen-{i}",
            interval="100ms",
            probe_timeout="1s",
            phases={"baseline": "300ms", "fault": "60s", "recovery": "1s"},
            faults=[{"name": "slow", "type": "network.latency", "proxy": "up", "latency": "50ms", "duration": "50s"}],
            slas=[],
        )
        path = write(folder, document, f"drill-{i}.yaml")
        procs.append(
            subprocess.Popen(
                [DRILLCTL, "run", str(path), "--runs-dir", str(runs), "--quiet"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    return runs, procs


def injected(runs: Path) -> int:
    journals = list(runs.glob("*/journal.jsonl")) if runs.exists() else []
    return sum(any(e["event"] == "injected" for e in read_entries(j)) for j in journals)


def reverted_at(run_dir: Path) -> float | None:
    walls = [float(e["wall"]) for e in read_entries(run_dir / "journal.jsonl") if e["event"] == "reverted"]
    return max(walls) if walls else None


def heard_at(run_dir: Path) -> float | None:
    """When the run heard the freeze: its log's `stop_requested` line (wall clock, as the journal's)."""
    for line in (run_dir / "drill.log.jsonl").read_text().splitlines():
        entry = json.loads(line)
        if entry.get("event") == "stop_requested":
            return datetime.fromisoformat(entry["timestamp"]).timestamp()
    return None


def one_round(count: int) -> tuple[list[float], str]:
    with tempfile.TemporaryDirectory() as tmp:
        runs, procs = start_runs(Path(tmp), count)
        deadline = time.monotonic() + 120
        while injected(runs) < count:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                for p in procs:
                    p.kill()
                    p.wait()
                return [], "the runs did not all reach their faults"
            time.sleep(0.05)
        sent = time.time()
        began = time.monotonic()
        frozen = subprocess.run(
            [DRILLCTL, "freeze", "--reason", "bench", "--runs-dir", str(runs), "-o", "json"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        took = time.monotonic() - began
        codes = [p.wait(timeout=60) for p in procs]
        stopped = json.loads(frozen.stdout)["stopped"]
        waited = sorted(s["waited"] for s in stopped)
        dirs = [Path(s["run_dir"]) for s in stopped]
        reverts = sorted(r - sent for d in dirs if (r := reverted_at(d)) is not None)
        heard = [(h, r) for d in dirs if (h := heard_at(d)) is not None and (r := reverted_at(d)) is not None]
        line = (
            f"freeze {took:.3f}s; runs ended {', '.join(f'{w:.3f}s' for w in waited)} after the request; faults "
            f"reverted {', '.join(f'{r:.3f}s' for r in reverts)} after the command started, "
            f"{', '.join(f'{r - h:.3f}s' for h, r in heard)} after the run heard it; exit codes {codes}; "
            f"unsettled journals {len(unsettled(runs))}"
        )
        return waited, line


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    for count in SIZES:
        print(f"{count} run(s) at once, {rounds} rounds:")
        ended: list[float] = []
        for _ in range(rounds):
            waited, line = one_round(count)
            ended += waited
            print(f"  {line}", flush=True)
        if ended:
            print(f"  runs ended after the freeze: median {statistics.median(ended):.3f}s, max {max(ended):.3f}s")


if __name__ == "__main__":
    main()
