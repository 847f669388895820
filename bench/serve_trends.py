"""`drillctl serve` at 10,000 runs: the trend page of a drill (and the index), in process and over HTTP.

The same synthetic history as bench/history.py (10,000 runs of one drill, 3 SLAs and 2 faults each, recovery
drifting slower) through the real SQLite store. Timed: the page built in process (history query, charts,
table), the charts alone, and GET /drills/orders and GET / against a real `drillctl serve` over loopback (one
kept-alive connection, as a browser's). Goal: the trend page answers in under 200 ms. Figures only.

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
from collections.abc import Callable
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.history import DRILL, calibration, show, synthetic, timed  # noqa: E402
from orchestrator.history.model import RunQuery  # noqa: E402
from orchestrator.history.sqlite import SqliteStore  # noqa: E402
from orchestrator.serve.app import ServeConfig, Server  # noqa: E402
from orchestrator.serve.pages import trend_page  # noqa: E402
from tests.serve.support import serving  # noqa: E402

REPEAT = 20


def over_http(session: requests.Session, url: str) -> Callable[[], object]:
    def get() -> None:
        answer = session.get(url, timeout=30)
        answer.raise_for_status()

    return get


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
        store.close()
        print(f"calibration: 1M-square loop {calibration() * 1e3:.0f}ms CPU (an idle core of ours: about 50 ms)")
        print(f"history: {len(series.run_ids)} runs of {DRILL}, {len(series.figures)} figures each")

        server = Server(ServeConfig(runs_dir, str(history)))
        page = server._trends(DRILL)
        assert page is not None
        show("trend page in process (query + charts + table)", timed(lambda: server._trends(DRILL), REPEAT))
        show("trend page, the rendering alone (charts + table)", timed(lambda: trend_page(series, set()), REPEAT))
        show("index page in process (every drill's series + last 100 runs)", timed(server._index, REPEAT))
        print(f"trend page: {len(page.encode()) / 1e3:.0f} kB of HTML")

        with serving(runs_dir) as url, requests.Session() as session:
            over_http(session, url + f"/drills/{DRILL}")()  # the connection, and the server's first imports
            trend = timed(over_http(session, url + f"/drills/{DRILL}"), REPEAT)
            show(f"GET /drills/{DRILL} over HTTP (client wall; CPU is the client's)", trend)
            index = timed(over_http(session, url + "/"), REPEAT)
            show("GET / over HTTP", index)
            walls = sorted(w for w, _ in trend)
            p90 = walls[int(len(walls) * 0.9) - 1]
            print(f"GET /drills/{DRILL}: median {statistics.median(walls) * 1e3:.1f}ms, p90 {p90 * 1e3:.1f}ms")
            print(f"max {walls[-1] * 1e3:.1f}ms; finished {time.strftime('%H:%M:%S')}")


if __name__ == "__main__":
    main()
