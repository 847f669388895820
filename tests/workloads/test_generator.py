"""The workload's schedule (rate, ramp, bursts) and the generator's open loop against a real slow server:
operations start on time whatever the server does, latency counts from the intended start, and one that cannot
start is recorded as failed."""

from __future__ import annotations

import asyncio
import itertools
import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from orchestrator.model.operations import FAIL, OK, WRITE, OperationLog
from orchestrator.model.workload import WorkloadSpec
from orchestrator.workloads.generator import History, Workload
from orchestrator.workloads.registry import build_client
from orchestrator.workloads.schedule import RateSchedule


def _spec(**fields: object) -> WorkloadSpec:
    return WorkloadSpec.model_validate({"client": {"type": "http", "url": "http://127.0.0.1:9"}, **fields})


def test_a_constant_rate_is_evenly_spaced() -> None:
    schedule = RateSchedule(_spec(rate=200))
    assert [schedule.at(k) for k in range(4)] == pytest.approx([0.0, 0.005, 0.010, 0.015])
    assert schedule.at(200_000) == pytest.approx(1000.0)
    assert schedule.first(0.0121) == 3 and schedule.first(0.010) == 2


def test_a_ramp_and_a_burst_give_the_operations_their_rates_say() -> None:
    spec = _spec(rate=100, ramp={"from": 0, "duration": "2s"}, bursts=[{"start": "5s", "duration": "1s", "rate": 1000}])
    schedule = RateSchedule(spec)
    times = [schedule.at(k) for k in range(2000)]
    assert all(b > a for a, b in itertools.pairwise(times))

    def due(a: float, b: float) -> int:
        return sum(a <= t < b for t in times)

    assert due(0, 2) == pytest.approx(100, abs=1)  # the ramp: half of 2 s at 100/s
    assert due(0, 1) == pytest.approx(25, abs=1)  # a quarter of it in its first half
    assert due(2, 5) == pytest.approx(300, abs=1)
    assert due(5, 6) == pytest.approx(1000, abs=1)
    assert due(6, 7) == pytest.approx(100, abs=1)
    assert all(schedule.at(schedule.first(t)) >= t and schedule.at(schedule.first(t) - 1) < t for t in (0.3, 2.5, 5.5))


class _Slow(BaseHTTPRequestHandler):
    """Answers every request after `delay` seconds, as a store stalled by a failover would."""

    protocol_version = "HTTP/1.1"
    delay = 0.0

    def do_PUT(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        threading.Event().wait(self.delay)
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def slow_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _operate(port: int, seconds: float, **fields: object) -> OperationLog:
    spec = _spec(rate=50, reads=0.0, client={"type": "http", "url": f"http://127.0.0.1:{port}"}, **fields)

    async def scenario() -> OperationLog:
        loop = asyncio.get_running_loop()
        history = History(OperationLog())
        client = build_client(spec, Path("."))
        workload = Workload(spec, client, history, loop.time(), lambda: "fault", "k/", 1)
        task = asyncio.create_task(workload.run())
        await asyncio.sleep(seconds)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await workload.client.close()
        return history.log

    return asyncio.run(scenario())


def test_a_slow_store_shows_as_slow_operations_on_schedule_not_as_fewer(slow_server: ThreadingHTTPServer) -> None:
    _Slow.delay = 0.3
    log = _operate(slow_server.server_address[1], 1.0, timeout="2s")
    starts = sorted(log.at)
    assert len(starts) >= 45  # 50/s for 1 s, however slow each answer
    assert all(b - a == pytest.approx(0.02, abs=1e-6) for a, b in itertools.pairwise(starts))
    lags = [x for x in log.lag if not math.isnan(x)]
    assert max(lags) < 0.2  # none waited for an earlier one
    done = [log.latency[i] for i in range(len(log)) if log.outcome[i] == OK]
    assert done and min(done) >= 0.3  # from the intended start, so the stall is in every latency


def test_an_operation_that_cannot_start_is_recorded_as_failed(slow_server: ThreadingHTTPServer) -> None:
    _Slow.delay = 1.0
    log = _operate(slow_server.server_address[1], 0.5, timeout="2s", max_in_flight=5)
    refused = [i for i in range(len(log)) if log.outcome[i] == FAIL]
    assert len(log) >= 20 and len(refused) >= len(log) - 5
    assert all(log.kind[i] == WRITE and math.isnan(log.latency[i]) for i in refused)
    assert "not started: 5 operations already in flight" in log.errors
