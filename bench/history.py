"""The history at 10,000 runs, on SQLite and on PostgreSQL: writing it, reading it back, and `drillctl history`.

Synthetic runs of one drill (3 labels, 3 SLAs, 2 faults each; recovery drifting slower, with noise) go
through the real stores (`orchestrator/history/sqlite.py`, and `postgres.py` on a PostgreSQL server the
script starts on loopback, as the tests' fixture does): in batches of 500, then 200 more one run per
transaction as runs record themselves. Then, timed over repeated runs: the query alone (`series`, what
`drillctl history` reads; with a label; `runs`, a record per run; a baseline's last 10), the query with the
table, and as whole processes `drillctl history DRILL` (text, with a label, JSON), `drillctl compare
--baseline history:last=10 RUN` and `drillctl --help`, the floor every process pays; where valgrind is
installed, the instructions those processes execute (callgrind's "Collected": the same on a loaded machine
as on an idle one). Goal: `drillctl history DRILL` under 200 ms. Figures only, nothing asserted.

    .venv/bin/python bench/history.py
    .venv/bin/python bench/history.py --runs 100000 --backend sqlite
"""

from __future__ import annotations

import argparse
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from orchestrator.history.model import FaultFigure, RunQuery, RunRecord, SlaFigure
from orchestrator.history.postgres import PostgresStore
from orchestrator.history.render import trend_lines
from orchestrator.history.store import HistoryStore, open_store
from orchestrator.reporting.json_report import write_json

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.fixtures.postgres import PostgresServer, running_postgres  # noqa: E402  (a server of its own)
from tests.history.support import report_of  # noqa: E402  (hand-made report.json for the compare)

REPEAT = 15
PROCESS_TIMEOUT = 120.0
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
    """The process, waited for by a blocking wait and killed if it outlives PROCESS_TIMEOUT. Not
    `subprocess.run(timeout=...)`: its wait polls, sleeping up to 50 ms between looks, so a process was seen
    to end only at 63, 113, 163, 213... ms (every wall figure this script printed until 2026-12-04)."""

    def run() -> None:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        killer = threading.Timer(PROCESS_TIMEOUT, proc.kill)
        killer.start()
        try:
            proc.wait()
        finally:
            killer.cancel()

    return run


def instructions(argv: list[str]) -> str:
    """What the process executes, counted by callgrind (about 20x slower than the process itself)."""
    if shutil.which("valgrind") is None:
        return "valgrind not installed"
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=600,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    return f"{int(found[1]) / 1e6:,.0f} M instructions" if found else "callgrind counted nothing"


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


def measure(location: str, runs: list[RunRecord], count: int, tmp: Path) -> None:
    """Every figure of one backend, the store at `location` empty to begin with."""
    drillctl = str(Path(sys.executable).parent / "drillctl")
    store = open_store(location)
    started = time.perf_counter()
    for i in range(0, count, 500):
        store.record(runs[i : min(i + 500, count)])
    batched = time.perf_counter() - started
    later = iter(runs[count:])
    singles = timed(lambda: store.record([next(later)]), 200)
    print(f"history of {len(runs)} runs of {DRILL}: {size(store, location)}")
    print(f"{'record in batches of 500':58} {batched / count * 1e6:8.1f}us a run ({batched:.2f}s in all)")
    show("record one run (one transaction, as a finished run does)", singles)

    query = RunQuery(drill=DRILL)
    (found,) = store.series(query)
    show(f"query alone: {len(found.run_ids)} runs as series (what history reads)", timed(lambda: store.series(query)))
    show("query + the table (trend_lines)", timed(lambda: trend_lines(store.series(query))))
    labelled = RunQuery(drill=DRILL, labels={"cluster": "a"})
    (some,) = store.series(labelled)
    show(f"query alone with --label cluster=a ({len(some.run_ids)} runs)", timed(lambda: store.series(labelled)))
    show("query alone as records, every run (a RunRecord each)", timed(lambda: store.runs(query), 5))
    base = RunQuery(drill=DRILL, status="passed", last=10)
    show("query alone for a baseline (last 10 passing)", timed(lambda: store.runs(base)))
    store.close()

    newest = runs[-1]
    run_dir = tmp / "runs" / newest.run_id
    if not run_dir.exists():
        run_dir.mkdir(parents=True)
        write_json(report_of(newest, run_dir), run_dir / "report.json")
    history = ["--history", location]
    show(f"drillctl history {DRILL} (process)", timed(process([drillctl, "history", DRILL, *history])))
    print(f"{'  the same, under callgrind':58} {instructions([drillctl, 'history', DRILL, *history])}")
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


def size(store: HistoryStore, location: str) -> str:
    """The file's size, or the database's on the server (tables, indexes and what PostgreSQL keeps beside)."""
    if isinstance(store, PostgresStore):
        with store._snapshot() as cur:
            found = int(cur.execute("SELECT pg_database_size(current_database())").fetchone()[0])
        return f"database {found / 1e6:.1f} MB"
    found = Path(location).stat().st_size
    return f"file {found / 1e6:.1f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    rng = random.Random(17)
    runs = [synthetic(n, rng) for n in range(args.runs + 200)]
    drillctl = str(Path(sys.executable).parent / "drillctl")
    print(f"calibration: 1M-square loop {calibration() * 1e3:.0f}ms CPU (an idle core of ours: about 50 ms)")
    show("drillctl --help (process: the floor)", timed(process([drillctl, "--help"])))
    print(f"{'  the same, under callgrind':58} {instructions([drillctl, '--help'])}")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        if args.backend in ("sqlite", "both"):
            print("\n# SQLite (the embedded default)")
            measure(str(tmp / "history.sqlite"), runs, args.runs, tmp)
        if args.backend in ("postgresql", "both"):
            with running_postgres() as server:
                print(f"\n# PostgreSQL (a server of its own on 127.0.0.1, {server_version(server)})")
                measure(server.database(), runs, args.runs, tmp)


def server_version(server: PostgresServer) -> str:
    with psycopg.connect(server.url(), connect_timeout=10) as db:
        return str(db.execute("SHOW server_version").fetchone()[0]).split()[0]


if __name__ == "__main__":
    main()
