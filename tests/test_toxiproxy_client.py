"""ToxiproxyClient against real toxiproxy-server processes: deadlines, errors, two servers at once."""

from __future__ import annotations

import asyncio
import gc
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from orchestrator.errors import BackendError
from orchestrator.toxiproxy_client import ToxiproxyClient, ToxiproxyNotFound
from orchestrator.toxiproxy_server import LocalToxiproxy
from tests.fixtures.toxiproxy import ToxiproxyServer, free_port


@pytest.fixture
def hung_server() -> Iterator[str]:
    """Accepts connections and never answers: what a wedged API server looks like."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def test_every_call_has_a_deadline(hung_server: str) -> None:
    client = ToxiproxyClient(hung_server, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(BackendError, match=r"did not answer within 0.5s"):
        asyncio.run(client.version())
    assert time.monotonic() - started < 5


def test_unreachable_server_names_the_endpoint() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(BackendError, match=url.replace(".", r"\.")):
        asyncio.run(ToxiproxyClient(url, timeout=1).version())


def test_two_servers_in_one_process_do_not_trip_over_each_other(
    toxiproxy: ToxiproxyServer, tmp_path: Path, toxiproxy_binary: Path
) -> None:
    async def scenario() -> tuple[list[str], list[str], str]:
        second = LocalToxiproxy(tmp_path / "second.log", seed=1)
        url = await second.start()
        try:
            a, b = ToxiproxyClient(toxiproxy.url), ToxiproxyClient(url)
            await asyncio.gather(
                a.create_proxy("only-on-a", "127.0.0.1:0", "127.0.0.1:1"),
                b.create_proxy("only-on-b", "127.0.0.1:0", "127.0.0.1:1"),
            )
            await b.add_toxic("only-on-b", "t", "latency", "downstream", 1.0, {"latency": 5})
            on_a = [t["name"] for t in await a.toxics("only-on-a")]
            on_b = [t["name"] for t in await b.toxics("only-on-b")]
            return on_a, on_b, str((await a.proxy("only-on-b")) is None)
        finally:
            await second.stop()

    on_a, on_b, b_proxy_absent_on_a = asyncio.run(scenario())
    assert on_a == [] and on_b == ["t"]
    assert b_proxy_absent_on_a == "True"
    assert list(toxiproxy.get("/proxies").json()) == ["only-on-a"]


def test_conflicts_and_missing_objects_become_clear_errors(toxiproxy: ToxiproxyServer) -> None:
    async def scenario() -> None:
        client = ToxiproxyClient(toxiproxy.url)
        await client.create_proxy("p", "127.0.0.1:0", "127.0.0.1:1")
        with pytest.raises(BackendError, match="refused"):
            await client.create_proxy("p", "127.0.0.1:0", "127.0.0.1:1")
        assert await client.remove_toxic("p", "nope") is False
        assert await client.proxy("nope") is None
        assert await client.delete_proxy("p") is True
        assert await client.delete_proxy("p") is False

    asyncio.run(scenario())


def test_local_server_stops_with_the_run(tmp_path: Path, toxiproxy_binary: Path) -> None:
    async def scenario() -> str:
        server = LocalToxiproxy(tmp_path / "log", seed=None)
        url = await server.start()
        assert (await ToxiproxyClient(url).version()).startswith("2.12")
        await server.stop()
        return url

    url = asyncio.run(scenario())
    with pytest.raises(BackendError):
        asyncio.run(ToxiproxyClient(url, timeout=1).version())


def test_a_hundred_concurrent_toxics_land_and_go(toxiproxy: ToxiproxyServer) -> None:
    """Concurrency the old worker-thread client could only queue: every call must still land once."""

    async def scenario() -> tuple[int, int, list[bool]]:
        client = ToxiproxyClient(toxiproxy.url)
        proxies = [f"p{i}" for i in range(10)]
        await asyncio.gather(*(client.create_proxy(p, "127.0.0.1:0", "127.0.0.1:1") for p in proxies))
        await asyncio.gather(
            *(
                client.add_toxic(proxies[i % 10], f"t{i}", "latency", "downstream", 1.0, {"latency": i})
                for i in range(100)
            )
        )
        landed = sum(map(len, await asyncio.gather(*(client.toxics(p) for p in proxies))))
        removed = await asyncio.gather(*(client.remove_toxic(proxies[i % 10], f"t{i}") for i in range(100)))
        left = sum(map(len, await asyncio.gather(*(client.toxics(p) for p in proxies))))
        return landed, left, removed

    landed, left, removed = asyncio.run(scenario())
    assert landed == 100 and left == 0 and all(removed)
    assert all(toxiproxy.get(f"/proxies/p{p}/toxics").json() == [] for p in range(10))


def test_refusals_and_server_errors_carry_status_and_reason(toxiproxy: ToxiproxyServer) -> None:
    async def scenario() -> list[str]:
        client = ToxiproxyClient(toxiproxy.url)
        taken = await client.create_proxy("first", "127.0.0.1:0", "127.0.0.1:1")
        messages = []
        for call in (
            client.add_toxic("first", "t", "no-such-toxic", "downstream", 1.0, {}),  # 400
            client.create_proxy("second", taken["listen"], "127.0.0.1:1"),  # 500: the port is in use
        ):
            with pytest.raises(BackendError) as caught:
                await call
            messages.append(str(caught.value))
        with pytest.raises(ToxiproxyNotFound):
            await client.toxics("nope")
        return messages

    bad_type, port_in_use = asyncio.run(scenario())
    assert "refused" in bad_type and "invalid toxic type" in bad_type
    assert "-> 500" in port_in_use and "POST /proxies" in port_in_use


def test_one_client_serves_several_event_loops_without_leaks(
    toxiproxy: ToxiproxyServer, caplog: pytest.LogCaptureFixture
) -> None:
    """`drillctl recover` and tests run one client under several asyncio.run calls: nothing may dangle."""
    client = ToxiproxyClient(toxiproxy.url)
    asyncio.run(client.create_proxy("p", "127.0.0.1:0", "127.0.0.1:1"))
    asyncio.run(client.add_toxic("p", "t", "latency", "downstream", 1.0, {"latency": 1}))
    assert [t["name"] for t in asyncio.run(client.toxics("p"))] == ["t"]
    gc.collect()
    assert not [r for r in caplog.records if "Unclosed" in r.getMessage()]


def test_calls_keep_their_connection_alive(toxiproxy: ToxiproxyServer) -> None:
    """One TCP connection for a run of calls, not one per call (what set the floor of a rollback's cost)."""

    async def scenario(client: ToxiproxyClient) -> None:
        await client.create_proxy("p", "127.0.0.1:0", "127.0.0.1:1")
        for i in range(20):
            await client.add_toxic("p", f"t{i}", "latency", "downstream", 1.0, {"latency": 1})
            assert await client.remove_toxic("p", f"t{i}")
        assert await client.remove_toxic("p", "t0") is False

    client = ToxiproxyClient(toxiproxy.url)
    asyncio.run(scenario(client))
    assert client.connections.opened == 1, "42 calls from one thread share one kept-alive connection"


def test_calls_made_at_once_share_a_pipeline_and_each_gets_its_own_answer(toxiproxy: ToxiproxyServer) -> None:
    """A rollback of a hundred toxics: written back to back on a kept connection, answered in order."""

    async def scenario(client: ToxiproxyClient) -> tuple[list[bool], list[str]]:
        await client.create_proxy("p", "127.0.0.1:0", "127.0.0.1:1")
        await asyncio.gather(
            *(client.add_toxic("p", f"t{i}", "latency", "downstream", 1.0, {"latency": i}) for i in range(100))
        )
        latencies = sorted(t["attributes"]["latency"] for t in await client.toxics("p"))
        assert latencies == list(range(100)), "each toxic added with its own attributes"
        gone = await asyncio.gather(*(client.remove_toxic("p", f"t{i}") for i in (*range(100), 0)))
        return list(gone), [t["name"] for t in await client.toxics("p")]

    client = ToxiproxyClient(toxiproxy.url)
    gone, left = asyncio.run(scenario(client))
    assert gone == [True] * 100 + [False], "the same toxic twice in one pipeline: removed, then not there"
    assert left == []
    assert client.connections.opened <= 2, "a hundred calls at once: a pipeline or two, not a connection each"


def test_a_client_outlives_a_restart_of_its_server(toxiproxy_binary: Path) -> None:
    """A kept-alive connection the server closed is replaced, not reported as a failed call."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    def start() -> subprocess.Popen[bytes]:
        server = subprocess.Popen(
            [str(toxiproxy_binary), "-host", "127.0.0.1", "-port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                requests.get(url + "/version", timeout=1).raise_for_status()
                return server
            except requests.RequestException:
                if time.monotonic() > deadline:
                    server.kill()
                    raise
                time.sleep(0.05)

    client = ToxiproxyClient(url, timeout=2)
    server = start()
    try:
        assert asyncio.run(client.version()).startswith("2.12")
        server.terminate()
        server.wait(10)
        server = start()
        assert asyncio.run(client.version()).startswith("2.12"), "the first call after the restart, not a retry"
    finally:
        server.terminate()
        server.wait(10)
