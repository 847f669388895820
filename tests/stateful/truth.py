"""What happened in a failover, measured without drillctl's code: the kill (the leader's process exits, seen
through a pidfd), the new leader (the system's own API), the first write a loop of the test's own gets
acknowledged after the kill, and lost writes counted from operations.bin's documented layout."""

from __future__ import annotations

import asyncio
import json
import os
import select
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import nats.errors
import psycopg
import requests

from tests.support import DRILLCTL, _env, report_of, run_dirs

POLL = 0.02
"""Spacing of the write loop and of the leader watch (their resolution)."""


def cluster_members(rest_urls: list[str]) -> list[dict[str, object]]:
    for url in rest_urls:
        try:
            return list(requests.get(url + "/cluster", timeout=0.5).json()["members"])
        except (requests.RequestException, ValueError, KeyError):
            continue
    return []


def patroni_leader(rest_urls: list[str]) -> str | None:
    """The member Patroni's REST API names leader."""
    leaders = [m["name"] for m in cluster_members(rest_urls) if m.get("role") == "leader"]
    return str(leaders[0]) if len(leaders) == 1 else None


def stream_leader(monitors: list[str], stream: str = "DRILL") -> str | None:
    """The server a NATS monitoring endpoint (/jsz) names the stream's leader."""
    for url in monitors:
        try:
            answer = requests.get(url + "/jsz?accounts=true&streams=true", timeout=0.5).json()
        except (requests.RequestException, ValueError):
            continue
        for account in answer.get("account_details") or []:
            for detail in account.get("stream_detail") or []:
                if detail.get("name") == stream and (detail.get("cluster") or {}).get("leader"):
                    return str(detail["cluster"]["leader"])
    return None


@dataclass
class Truth:
    old_leader: str
    killed_at: float | None = None
    new_leader: str | None = None
    new_leader_at: float | None = None
    acks: list[tuple[float, float]] = field(default_factory=list)
    """(sent, acknowledged) of each write of the test's own loop."""
    stop: threading.Event = field(default_factory=threading.Event)

    def window(self) -> float:
        """From the kill to the acknowledgement of the first write the test's own loop sent after it: a write sent
        before the kill may be acknowledged by the old leader and land a moment after (seen: 3 ms after)."""
        assert self.killed_at is not None
        killed = self.killed_at
        return min(acked for sent, acked in self.acks if sent > killed) - killed


def watch_failover(
    pid: int, old_leader: str, leader_now: Callable[[], str | None], writer: Callable[[Truth], None]
) -> Truth:
    """Threads that record the truth until `truth.stop` is set: the kill (the leader's process exits, seen through
    a pidfd), the first other leader the system names after it, and the acknowledgements of `writer`'s loop."""
    truth = Truth(old_leader)
    pidfd = os.pidfd_open(pid)

    def kill() -> None:
        while not truth.stop.is_set():
            if select.select([pidfd], [], [], 0.5)[0]:
                truth.killed_at = time.time()
                return

    def leader() -> None:
        while not truth.stop.wait(POLL):
            if truth.killed_at is None:
                continue
            name = leader_now()
            if name is not None and name != old_leader:
                truth.new_leader, truth.new_leader_at = name, time.time()
                return

    for target in (kill, leader, lambda: writer(truth)):
        threading.Thread(target=target, daemon=True).start()
    return truth


def postgres_writes(dsn: str) -> Callable[[Truth], None]:
    """A loop of INSERTs every POLL seconds, each acknowledgement's time recorded."""

    def loop(truth: Truth) -> None:
        connection: psycopg.Connection[tuple[object, ...]] | None = None
        while not truth.stop.wait(POLL):
            try:
                if connection is None:
                    connection = psycopg.connect(dsn, autocommit=True)
                    connection.execute("SET statement_timeout = '1s'")
                    connection.execute("CREATE TABLE IF NOT EXISTS truth (at double precision)")
                sent = time.time()
                connection.execute("INSERT INTO truth VALUES (%s)", (sent,))
                truth.acks.append((sent, time.time()))
            except psycopg.Error:
                if connection is not None:
                    connection.close()
                connection = None
        if connection is not None:
            connection.close()

    return loop


def nats_writes(servers: list[str]) -> Callable[[Truth], None]:
    """A loop of JetStream publishes every POLL seconds (nats-py), each acknowledgement's time recorded."""

    async def publish(truth: Truth) -> None:
        async def quiet(*_: object) -> None:
            return None

        connection = await nats.connect(
            servers=servers, max_reconnect_attempts=-1, reconnect_time_wait=0.1, error_cb=quiet,
            disconnected_cb=quiet, reconnected_cb=quiet,
        )  # fmt: skip
        js = connection.jetstream(timeout=0.5)
        while not truth.stop.is_set():
            try:
                sent = time.time()
                await js.publish("drill.truth", b"truth", timeout=0.5)
                truth.acks.append((sent, time.time()))
            except (nats.errors.Error, TimeoutError):
                pass
            await asyncio.sleep(POLL)
        await connection.close()

    return lambda truth: asyncio.run(publish(truth))


def run_against_truth(
    drill: Path, cwd: Path, truth: Truth, sla: str, interval: float, probe_cost: float
) -> tuple[int, dict[str, Any], Path, dict[str, float]]:
    """drillctl runs the drill while `truth` records; its recovery window (SLA `sla`) must agree with the truth
    within one sampling interval plus the probe's own cost (and the write loop's spacing and a margin for a
    loaded machine). drillctl starts in `cwd`, a folder of its own: every path in a drill is relative to the drill's
    folder, so the shipped drill runs from anywhere. Returns the exit code, report, run folder and both figures."""
    cwd.mkdir(exist_ok=True)
    runs = cwd / "runs"
    try:
        done = subprocess.run(
            [DRILLCTL, "run", str(drill), "--runs-dir", str(runs), "--quiet"],
            capture_output=True, text=True, env=_env(), timeout=150, cwd=cwd,
        )  # fmt: skip
    finally:
        truth.stop.set()
    assert done.returncode in (0, 1), done.stdout + done.stderr
    report = report_of(runs)
    (run_dir,) = run_dirs(runs)
    window = next(s for s in report["slas"] if s["name"] == sla)["measured"]
    assert truth.killed_at is not None and truth.new_leader_at is not None, truth
    figures = {
        "drillctl_window": window,
        "truth_window": truth.window(),
        "new_leader_after_kill": truth.new_leader_at - truth.killed_at,
        "probe_cost": probe_cost,
    }
    print(json.dumps(figures))
    # the system named a new leader before (or as) the test's first write after the kill was acknowledged
    assert 1.0 < figures["new_leader_after_kill"] <= figures["truth_window"] + 0.1, figures
    assert abs(window - figures["truth_window"]) <= interval + probe_cost + 0.3, figures
    return done.returncode, report, run_dir, figures


def probe_cost(argv: list[str], cwd: Path) -> float:
    """What one sample of a drill's command probe costs, the slowest of three."""
    costs = []
    for _ in range(3):
        began = time.monotonic()
        subprocess.run(argv, check=True, timeout=10, stdout=subprocess.DEVNULL, cwd=cwd)
        costs.append(time.monotonic() - began)
    return max(costs)


HEADER, RECORD = struct.Struct("<8sHH20x"), struct.Struct("<BBBxIiqIiI")
TEXT = 4


def acknowledged_writes(operations: Path) -> dict[int, tuple[int, int, int]]:
    """value -> (key, intended start, acknowledged at), microseconds, for every acknowledged write."""
    data = operations.read_bytes()
    magic, _, size = HEADER.unpack_from(data)
    assert magic == b"DRLOPS\n\0" and size == RECORD.size
    found: dict[int, tuple[int, int, int]] = {}
    offset = HEADER.size
    while offset + RECORD.size <= len(data):
        kind, outcome, _, key, value, at, latency, _, _ = RECORD.unpack_from(data, offset)
        offset += RECORD.size
        if kind == TEXT:
            length = struct.unpack_from("<q", data, offset - RECORD.size + 8)[0]
            offset += -(-length // RECORD.size) * RECORD.size
        elif kind == 1 and outcome == 1:
            found[value] = (key, at, at + latency)
    return found


def lost_writes(acked: dict[int, tuple[int, int, int]], final: dict[int, int]) -> int:
    """Acknowledged writes whose key now holds nothing, or a write acknowledged before they were meant to start."""
    lost = 0
    for value, (key, at, _) in acked.items():
        now = final.get(key)
        if now == value:
            continue
        if now is None or (now in acked and acked[now][2] < at):
            lost += 1
    return lost
