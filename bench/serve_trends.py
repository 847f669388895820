"""`drillctl serve` at 10,000 runs: the trend page of a drill (and the index), in process and over HTTP.

The same synthetic history as bench/history.py (10,000 runs of one drill, 3 SLAs and 2 faults each, recovery
drifting slower) through the real SQLite store. The server keeps a page while the history's stamp holds, so
each page is timed twice: after the history changed (read and drawn again) and unchanged (the stamp, then the
kept page). In process: the page, its rendering alone, the index; then GET /drills/orders and GET / against a
real `drillctl serve` over loopback (one kept-alive connection, as a browser's), "changed" meaning one more
run recorded (by this script, untimed) before each GET. Goal: the trend page answers in under 200 ms.
Figures only.

    .venv/bin/python bench/serve_trends.py
    .venv/bin/python bench/serve_trends.py --runs 100000
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.history import DRILL, calibration, show, synthetic, timed  # noqa: E402
from orchestrator.history.model import RunQuery, RunRecord  # noqa: E402
from orchestrator.history.sqlite import SqliteStore  # noqa: E402
from orchestrator.serve.app import ServeConfig, Server  # noqa: E402
from orchestrator.serve.pages import trend_page  # noqa: E402
from tests.serve.support import serving  # noqa: E402

REPEAT = 20


def get(session: requests.Session, url: str) -> Callable[[], object]:
    def once() -> None:
        answer = session.get(url, timeout=30)
        answer.raise_for_status()

    return once


def walls(call: Callable[[], object], before: Callable[[], object] | None = None) -> list[float]:
    """Client wall times of REPEAT calls (the server's CPU is another process's), `before` each untimed."""
    out = []
    for _ in range(REPEAT):
        if before is not None:
            before()
        started = time.perf_counter()
        call()
        out.append(time.perf_counter() - started)
    return out


def show_walls(name: str, times: list[float]) -> None:
    ordered = sorted(times)
    p90 = ordered[int(len(ordered) * 0.9) - 1]
    print(
        f"{name:64} wall median {statistics.median(ordered) * 1e3:7.1f}ms p90 {p90 * 1e3:7.1f}ms"
        f" max {ordered[-1] * 1e3:7.1f}ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    args = parser.parse_args()
    rng = random.Random(17)
    with tempfile.TemporaryDirectory() as tmp:
        runs_dir = Path(tmp) / "runs"
        runs_dir.mkdir()
        history = runs_dir / "history.sqlite"
        store = SqliteStore(history)
        runs = [synthetic(n, rng) for n in range(args.runs)]
        for i in range(0, len(runs), 500):
            store.record(runs[i : i + 500])
        (series,) = store.series(RunQuery(drill=DRILL))
        print(f"calibration: 1M-square loop {calibration() * 1e3:.0f}ms CPU (an idle core of ours: about 50 ms)")
        print(f"history: {len(series.run_ids)} runs of {DRILL}, {len(series.figures)} figures each")

        server = Server(ServeConfig(runs_dir, str(history)))
        page = server._trends(DRILL)
        assert page is not None

        def forgotten(call: Callable[[], object]) -> Callable[[], object]:
            """As after a run was recorded: nothing kept."""

            def again() -> object:
                server._trend_pages.clear()
                server._kept_index = None
                return call()

            return again

        def trends() -> object:
            return server._trends(DRILL)

        show("trend page in process, history changed (query + charts + table)", timed(forgotten(trends), REPEAT))
        show("trend page in process, history unchanged (stamp + kept page)", timed(trends, REPEAT))
        show("trend page, the rendering alone (charts + table)", timed(lambda: trend_page(series, set()), REPEAT))
        show("index page in process, history changed", timed(forgotten(server._index_page), REPEAT))
        show("index page in process, history unchanged", timed(server._index_page, REPEAT))
        print(f"trend page: {len(page.encode()) / 1e3:.0f} kB of HTML")

        more: Iterator[RunRecord] = (synthetic(n, rng) for n in range(args.runs, args.runs + 4 * REPEAT))

        def a_run() -> None:
            store.record([next(more)])

        with serving(runs_dir) as url, requests.Session() as session:
            trend_get = get(session, url + f"/drills/{DRILL}")
            trend_get()  # the connection, and the server's first imports
            show_walls(f"GET /drills/{DRILL}, a run recorded before each", walls(trend_get, a_run))
            show_walls(f"GET /drills/{DRILL}, history unchanged", walls(trend_get))
            show_walls("GET /, a run recorded before each", walls(get(session, url + "/"), a_run))
            show_walls("GET /, history unchanged", walls(get(session, url + "/")))
        store.close()
        print(f"finished {time.strftime('%H:%M:%S')}")


if __name__ == "__main__":
    main()
