"""What happened in a failover, measured without drillctl's code: the kill (the primary's postmaster exits, seen
through a pidfd), the new primary (Patroni's REST API), the first write a loop of the test's own gets
acknowledged after the kill, and lost writes counted from operations.bin's documented layout."""

from __future__ import annotations

import os
import select
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import requests

POLL = 0.02
"""Spacing of the write loop and of the leader watch (their resolution)."""


def cluster_members(rest_urls: list[str]) -> list[dict[str, object]]:
    for url in rest_urls:
        try:
            return list(requests.get(url + "/cluster", timeout=0.5).json()["members"])
        except (requests.RequestException, ValueError, KeyError):
            continue
    return []


def leader_of(rest_urls: list[str]) -> str | None:
    leaders = [m["name"] for m in cluster_members(rest_urls) if m.get("role") == "leader"]
    return str(leaders[0]) if len(leaders) == 1 else None


@dataclass
class Truth:
    old_leader: str
    killed_at: float | None = None
    new_leader: str | None = None
    new_leader_at: float | None = None
    acks: list[float] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def first_write_after_kill(self) -> float:
        assert self.killed_at is not None
        return min(t for t in self.acks if t > self.killed_at)

    def window(self) -> float:
        assert self.killed_at is not None
        return self.first_write_after_kill() - self.killed_at


def watch_failover(postmaster_pid: int, old_leader: str, rest_urls: list[str], dsn: str) -> Truth:
    """Threads that record the truth until `truth.stop` is set."""
    truth = Truth(old_leader)
    pidfd = os.pidfd_open(postmaster_pid)

    def kill() -> None:
        while not truth.stop.is_set():
            if select.select([pidfd], [], [], 0.5)[0]:
                truth.killed_at = time.time()
                return

    def leader() -> None:
        while not truth.stop.wait(POLL):
            if truth.killed_at is None:
                continue
            name = leader_of(rest_urls)
            if name is not None and name != old_leader:
                truth.new_leader, truth.new_leader_at = name, time.time()
                return

    def writes() -> None:
        connection: psycopg.Connection[tuple[object, ...]] | None = None
        while not truth.stop.wait(POLL):
            try:
                if connection is None:
                    connection = psycopg.connect(dsn, autocommit=True)
                    connection.execute("SET statement_timeout = '1s'")
                connection.execute("CREATE TABLE IF NOT EXISTS truth (at double precision)")
                connection.execute("INSERT INTO truth VALUES (%s)", (time.time(),))
                truth.acks.append(time.time())
            except psycopg.Error:
                if connection is not None:
                    connection.close()
                connection = None
        if connection is not None:
            connection.close()

    for target in (kill, leader, writes):
        threading.Thread(target=target, daemon=True).start()
    return truth


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
