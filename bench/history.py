"""The history at 10,000 runs: writing it, reading it back, and `drillctl history` as a whole process.

Synthetic runs of one drill (3 labels, 3 SLAs, 2 faults each; recovery drifting slower, with noise) go
through the real store (`orchestrator/history/sqlite.py`): in batches of 500, then 200 more one run per
transaction as runs record themselves. Then, timed over repeated runs: the query alone (`series`, what
`drillctl history` reads; with a label; `runs`, a record per run; a baseline's last 10), the query with the
table, and as whole processes `drillctl history DRILL` (text, with a label, JSON), `drillctl compare
--baseline history:last=10 RUN` and `drillctl --help`, the floor every process pays. Goal: `drillctl
history DRILL` under 200 ms. Figures only, nothing asserted.

    .venv/bin/python bench/history.py
    .venv/bin/python bench/history.py --runs 100000
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from orchestrator.history.model import FaultFigure, RunQuery, RunRecord, SlaFigure
from orchestrator.history.render import trend_lines
from orchestrator.history.sqlite import SqliteStore
from orchestrator.reporting.json_report import write_json

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.history.support import report_of  # noqa: E402  (hand-made report.json for the compare)

REPEAT = 15
DRILL = "orders"


def synthetic(n: int, rng: random.Random) -> RunRecord:
    """Run `n`, an hour after run n-1: recovery about 1s, 0.01% slower a run, with 10% noise."""
    recover = 1.0 * (1 + n / 10_000) * rng.uniform(0.9, 1.1)
    passed = rng.random() > 0.05
    start = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(hours=n)
    return RunRecord(
        run_id=f"{DRILL}-{start:%Y%m%dT%H%M%S}Z",
        drill=DRILL,
        started_at=start,
        finished_at=start + timedelta(seconds=40),
        status="passed" if passed else "failed",
        verdict="PASS" if passed else "FAIL",
        labels={"release": f"1.{n // 500}", "git": f"{rng.getrandbits(28):07x}", "cluster": rng.choice(["a", "b"])},
        slas=(
            SlaFigure("recovers", "recovery_window", "s", passed, recover, 3.0, 3.0 - recover, 0.05),
            SlaFigure("errors", "error_rate", "ratio", True, rng.uniform(0, 0.05), 0.1, 0.05, 0.001),
            SlaFigure("latency", "latency", "s", True, rng.uniform(0.01, 0.02), 0.05, 0.03, None),
        ),
        faults=(
            FaultFigure("cut", "after_revert", 0.05, recover - 0.2, recover + 0.1, recover, 0.05),
            FaultFigure("slow", "not_impacted", None, None, 0.0, 0.0, 0.05),
        ),
    )


def timed(call: Callable[[], object], repeat: int = REPEAT) -> list[tuple[float, float]]:
    """(wall, CPU) seconds of each call; CPU counts this process and the children it waited for, which
    a machine shared with other work inflates far less than wall time."""
    out = []
    for _ in range(repeat):
        cpu = _cpu()
        started = time.perf_counter()
        call()
        out.append((time.perf_counter() - started, _cpu() - cpu))
    return out


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def process(argv: list[str]) -> Callable[[], object]:
    return lambda: subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)


def show(name: str, times: list[tuple[float, float]]) -> None:
    wall, cpu = [w for w, _ in times], [c for _, c in times]
    print(
        f"{name:58} wall median {statistics.median(wall) * 1e3:7.1f}ms min {min(wall) * 1e3:7.1f}ms"
        f"  CPU median {statistics.median(cpu) * 1e3:7.1f}ms  ({len(times)} runs)"
    )


def calibration() -> float:
    """CPU seconds of a fixed loop: how much slower this machine is now than an idle one (about 0.05 s)."""
    started = time.process_time()
    sum(i * i for i in range(1_000_000))
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    args = parser.parse_args()
    rng = random.Random(17)
    drillctl = str(Path(sys.executable).parent / "drillctl")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "history.sqlite"
        store = SqliteStore(path)
        runs = [synthetic(n, rng) for n in range(args.runs + 200)]
        started = time.perf_counter()
        for i in range(0, args.runs, 500):
            store.record(runs[i : min(i + 500, args.runs)])
        batched = time.perf_counter() - started
        later = iter(runs[args.runs :])
        singles = timed(lambda: store.record([next(later)]), 200)
        print(f"calibration: 1M-square loop {calibration() * 1e3:.0f}ms CPU (an idle core of ours: about 50 ms)")
        total = args.runs + 200
        size = path.stat().st_size
        print(f"history of {total} runs of {DRILL}: {size / 1e6:.1f} MB ({size / total:.0f} B a run)")
        print(f"{'record in batches of 500':58} {batched / args.runs * 1e6:8.1f}us a run ({batched:.2f}s in all)")
        show("record one run (one transaction, as a finished run does)", singles)

        query = RunQuery(drill=DRILL)
        (found,) = store.series(query)
        show(
            f"query alone: {len(found.run_ids)} runs as series (what history reads)", timed(lambda: store.series(query))
        )
        show("query + the table (trend_lines)", timed(lambda: trend_lines(store.series(query))))
        labelled = RunQuery(drill=DRILL, labels={"cluster": "a"})
        (some,) = store.series(labelled)
        show(f"query alone with --label cluster=a ({len(some.run_ids)} runs)", timed(lambda: store.series(labelled)))
        show("query alone as records, every run (a RunRecord each)", timed(lambda: store.runs(query), 5))
        base = RunQuery(drill=DRILL, status="passed", last=10)
        show("query alone for a baseline (last 10 passing)", timed(lambda: store.runs(base)))
        store.close()

        newest = runs[-1]
        run_dir = Path(tmp) / "runs" / newest.run_id
        run_dir.mkdir(parents=True)
        write_json(report_of(newest, run_dir), run_dir / "report.json")
        history = ["--history", str(path)]
        show("drillctl --help (process: the floor)", timed(process([drillctl, "--help"])))
        show(f"drillctl history {DRILL} (process)", timed(process([drillctl, "history", DRILL, *history])))
        show(
            f"drillctl history {DRILL} --label cluster=a (process)",
            timed(process([drillctl, "history", DRILL, "--label", "cluster=a", *history])),
        )
        show(
            f"drillctl history {DRILL} -o json (process)",
            timed(process([drillctl, "history", DRILL, "-o", "json", *history])),
        )
        show(
            "drillctl compare --baseline history:last=10 RUN (process)",
            timed(process([drillctl, "compare", "--baseline", "history:last=10", str(run_dir), *history])),
        )


if __name__ == "__main__":
    main()
