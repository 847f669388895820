"""The `postgres` and `nats` workload clients against real systems: what each answer of the system comes to
(acknowledged, failed, unknown), read-back values, and a bounded wait when the system stalls."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from orchestrator.model.operations import Operation
from orchestrator.model.workload import WorkloadSpec
from orchestrator.workloads.base import Result
from orchestrator.workloads.registry import build_client
from tests.fixtures.nats import NatsCluster, nats_cluster
from tests.fixtures.patroni import PatroniCluster, patroni_cluster
from tests.fixtures.toxiproxy import free_port


def _invoke(client: dict[str, object], *operations: Operation, timeout: str = "2s") -> list[Result]:
    spec = WorkloadSpec.model_validate({"rate": 1, "timeout": timeout, "client": client})

    async def scenario() -> list[Result]:
        built = build_client(spec, Path.cwd())
        try:
            return [await built.invoke(op) for op in operations]
        finally:
            await built.close()

    return asyncio.run(scenario())


@pytest.fixture(scope="module")
def patroni() -> Iterator[PatroniCluster]:
    with patroni_cluster("sync") as cluster:
        yield cluster


@pytest.fixture(scope="module")
def jetstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    with nats_cluster(tmp_path_factory.mktemp("nats") / "cluster") as cluster:
        yield cluster


def _client(system: str, request: pytest.FixtureRequest) -> dict[str, object]:
    if system == "postgres":
        cluster: PatroniCluster = request.getfixturevalue("patroni")
        return {"type": "postgres", "dsn": cluster.dsn(), "table": "clients_test"}
    nats: NatsCluster = request.getfixturevalue("jetstream")
    return {"type": "nats", "servers": nats.servers(), "stream": "DRILL"}


@pytest.mark.parametrize(
    ("system", "held"),
    [("postgres", ("11",)), ("nats", ("10", "11"))],  # a row holds the last write; a subject every message
)
def test_writes_are_acknowledged_and_reads_find_them(
    system: str, held: tuple[str, ...], request: pytest.FixtureRequest
) -> None:
    results = _invoke(
        _client(system, request),
        Operation("write", "run.1/7", "10"),
        Operation("write", "run.1/7", "11"),
        Operation("read", "run.1/7"),
        Operation("read", "run.1/absent"),
    )
    assert [r.outcome for r in results] == ["ok", "ok", "ok", "ok"]
    assert results[2].values == held and results[3].values == ()


def test_postgres_refusals_fail_and_a_commit_that_waits_too_long_is_unknown(patroni: PatroniCluster) -> None:
    nobody = {"type": "postgres", "dsn": f"host=127.0.0.1 port={free_port()} user=postgres connect_timeout=1"}
    assert [r.outcome for r in _invoke(nobody, Operation("write", "a", "1"), Operation("read", "a"))] == [
        "fail",
        "fail",
    ]
    # a standby refuses the INSERT (read-only transaction): known not to have taken effect
    leader = requests.get(patroni.rest(1) + "/cluster", timeout=5).json()["members"]
    replica = next(m for m in leader if m["role"] != "leader")
    standby = patroni.base + int(replica["name"].removeprefix("pg-"))
    dsn = f"host=127.0.0.1 port={standby} user=postgres password=drillctl dbname=postgres connect_timeout=1"
    (refused,) = _invoke({"type": "postgres", "dsn": dsn}, Operation("write", "a", "1"))
    assert refused.outcome == "fail" and "ReadOnlySqlTransaction" in (refused.error or "")
    # replication stalled: a synchronous commit waits for the standby; past the timeout it may have happened
    (before,) = _invoke({"type": "postgres", "dsn": patroni.dsn()}, Operation("write", "s", "0"))
    assert before.outcome == "ok"  # the table exists: the client's CREATE TABLE IF NOT EXISTS writes nothing now
    toxiproxy = f"http://127.0.0.1:{patroni.port(40)}"
    for n in (1, 2, 3):
        toxic = {"name": "stall", "type": "timeout", "stream": "downstream", "attributes": {"timeout": 0}}
        requests.post(f"{toxiproxy}/proxies/pg-{n}/toxics", json=toxic, timeout=5).raise_for_status()
    try:
        began = time.monotonic()
        (stalled,) = _invoke({"type": "postgres", "dsn": patroni.dsn()}, Operation("write", "s", "1"), timeout="1s")
        assert stalled.outcome == "unknown" and "timeout" in (stalled.error or "")
        assert time.monotonic() - began < 5
    finally:
        for n in (1, 2, 3):
            requests.delete(f"{toxiproxy}/proxies/pg-{n}/toxics/stall", timeout=5)


def test_nats_without_a_stream_or_a_server_fails(jetstream: NatsCluster) -> None:
    elsewhere = {"type": "nats", "servers": jetstream.servers(), "stream": "NOPE", "subject_prefix": "other."}
    (unheard,) = _invoke(elsewhere, Operation("write", "a", "1"))
    assert unheard.outcome == "fail" and "no stream leader" in (unheard.error or "")
    nobody = {"type": "nats", "servers": [f"nats://127.0.0.1:{free_port()}"], "stream": "DRILL"}
    assert [r.outcome for r in _invoke(nobody, Operation("write", "a", "1"), Operation("read", "a"))] == [
        "fail",
        "fail",
    ]
