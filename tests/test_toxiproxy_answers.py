"""What ToxiproxyClient does with answers no real Toxiproxy gives: too large, endless, not JSON, the wrong shape.

A loopback HTTP server poses as Toxiproxy on the port (a wrong service there, or a hostile one); a
real toxiproxy-server answers far below the bound, so these cases need the poser.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from orchestrator.errors import BackendError
from orchestrator.limits import TOXIPROXY_ANSWER
from orchestrator.toxiproxy_client import ToxiproxyClient
from tests.budget import run_bounded

SMALL_BOUND = 64 * 1024


@dataclass
class Answer:
    body: bytes = b"{}"
    status: int = 200
    chunked: bool = False  # no Content-Length: the client only learns the size by reading
    endless: bool = False  # chunks until the client hangs up
    content_type: str = "application/json"
    closes_after: int | None = None  # answers on a connection, the last with `Connection: close`
    hangs_up_after: int | None = None  # answers on a connection before it is dropped without a word
    stalls_on: str | None = None  # a path this answers only once the test is over (Shopify/toxiproxy#558)


class Poser(ThreadingHTTPServer):
    daemon_threads = True
    answer = Answer()
    released = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Poser

    def setup(self) -> None:
        super().setup()
        self.answered = 0

    def _answer(self) -> None:
        answer = self.server.answer
        if answer.hangs_up_after is not None and self.answered == answer.hangs_up_after:
            self.close_connection = True
            return
        if answer.stalls_on is not None and answer.stalls_on in self.path:
            self.server.released.wait(30)
        self.answered += 1
        self.send_response(answer.status)
        if self.answered == answer.closes_after:
            self.send_header("Connection", "close")
        self.send_header("Content-Type", answer.content_type)
        if answer.chunked or answer.endless:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        try:
            if answer.endless:
                piece = b" " * 65536
                while True:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            elif answer.chunked:
                for start in range(0, len(answer.body), 1000):
                    piece = answer.body[start : start + 1000]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.write(b"0\r\n\r\n")
            else:
                self.wfile.write(answer.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def do_GET(self) -> None:
        self._answer()

    def do_DELETE(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._answer()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read the client's errors, not the poser's log."""


@pytest.fixture
def poser() -> Iterator[Poser]:
    server = Poser(("127.0.0.1", 0), _Handler)
    server.released = threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.released.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


def toxics_of_size(size: int) -> bytes:
    """A valid list of toxics, exactly `size` bytes of JSON."""
    body = json.dumps([{"name": ""}]).encode()
    return json.dumps([{"name": "x" * (size - len(body))}]).encode()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_answer_just_under_the_bound_is_read_and_just_over_is_refused(
    poser: Poser, monkeypatch: pytest.MonkeyPatch, chunked: bool
) -> None:
    monkeypatch.setenv(TOXIPROXY_ANSWER.env, str(SMALL_BOUND))
    client = ToxiproxyClient(poser.url, timeout=5)

    poser.answer = Answer(toxics_of_size(SMALL_BOUND), chunked=chunked)
    (toxic,) = asyncio.run(client.toxics("p"))
    assert len(toxic["name"]) > SMALL_BOUND - 20

    poser.answer = Answer(toxics_of_size(SMALL_BOUND + 1), chunked=chunked)
    with pytest.raises(BackendError) as refused:
        asyncio.run(client.toxics("p"))
    message = str(refused.value)
    assert poser.url in message and "GET /proxies/p/toxics" in message
    assert f"over the limit of {SMALL_BOUND:,} bytes" in message and TOXIPROXY_ANSWER.env in message

    poser.answer = Answer(toxics_of_size(100))
    assert len(asyncio.run(client.toxics("p"))) == 1, "a refused answer must not spoil the next call"


def _read_endless_answer(url: str) -> tuple[str, str]:
    """The blocking exchange itself (what the worker thread runs), in the budget's child process."""
    client = ToxiproxyClient(url, timeout=5)
    (outcome,) = client.connections.send([client.request("GET", "/proxies")])
    return type(outcome).__name__, str(outcome)


def test_an_endless_answer_is_cut_at_the_bound_without_reading_it_all(poser: Poser) -> None:
    poser.answer = Answer(endless=True)
    outcome = run_bounded(_read_endless_answer, poser.url, seconds=30, memory_mib=64)
    kind, message = outcome.value
    assert kind == "AnswerTooLarge"
    assert f"{TOXIPROXY_ANSWER.default:,} bytes" in message and TOXIPROXY_ANSWER.env in message


def test_an_endless_answer_is_a_backend_error_naming_the_server(poser: Poser) -> None:
    poser.answer = Answer(endless=True)
    with pytest.raises(BackendError, match=r"over the limit of 4,194,304 bytes") as refused:
        asyncio.run(ToxiproxyClient(poser.url, timeout=5).proxy("p"))
    assert poser.url in str(refused.value)


@pytest.mark.parametrize(
    ("call", "answer", "expected"),
    [
        ("version", Answer(b"<html>hello</html>", content_type="text/html"), "not JSON: '<html>hello</html>'"),
        ("version", Answer(b"[1, 2]"), "not an object with a version"),
        ("version", Answer(b'{"v": "2.12.0"}'), "not an object with a version"),
        ("toxics", Answer(b'{"name": "t"}'), "not a list of toxics"),
        ("toxics", Answer(b'[{"type": "latency"}]'), "not a list of named toxics"),
        ("toxics", Answer(b"[1]"), "not a list of toxics"),
        ("proxy", Answer(b"[]"), "not a proxy"),
        ("create_proxy", Answer(b'"ok"', status=201), "not a proxy"),
        ("proxy", Answer(b"\xff\xfe{", chunked=True), "not JSON"),
        ("proxy", Answer(b"[" * 200_000 + b"]" * 200_000), "not JSON"),
    ],
)
def test_an_answer_that_is_not_json_or_the_wrong_shape_is_a_clear_backend_error(
    poser: Poser, call: str, answer: Answer, expected: str
) -> None:
    client = ToxiproxyClient(poser.url, timeout=5)
    calls = {
        "version": client.version,
        "toxics": lambda: client.toxics("p"),
        "proxy": lambda: client.proxy("p"),
        "create_proxy": lambda: client.create_proxy("p", "127.0.0.1:0", "127.0.0.1:1"),
    }
    poser.answer = answer
    with pytest.raises(BackendError) as caught:
        asyncio.run(calls[call]())
    assert expected in str(caught.value) and poser.url in str(caught.value)


def test_a_long_error_answer_is_quoted_cut(poser: Poser) -> None:
    poser.answer = Answer(b"x" * 100_000, status=500, content_type="text/plain")
    with pytest.raises(BackendError, match="-> 500 x") as caught:
        asyncio.run(ToxiproxyClient(poser.url, timeout=5).set_enabled("p", False))
    assert len(str(caught.value)) < 500


def _removed_at_once(poser: Poser, count: int) -> tuple[ToxiproxyClient, list[object]]:
    """`count` removals made at once (one pipeline), each call's own outcome."""
    client = ToxiproxyClient(poser.url, timeout=5)

    async def at_once() -> list[object]:
        calls = (client.remove_toxic("p", f"t{i}") for i in range(count))
        return await asyncio.gather(*calls, return_exceptions=True)

    return client, asyncio.run(at_once())


def test_a_pipeline_the_server_stops_reading_is_sent_on_again_on_a_new_connection(poser: Poser) -> None:
    """A server that closes after an answer has read no request after it: those go again, nothing is lost."""
    poser.answer = Answer(b"", status=204, closes_after=3)
    client, outcomes = _removed_at_once(poser, 10)
    assert outcomes == [True] * 10
    assert client.connections.opened == 4, "3 + 3 + 3 + 1 answers, each connection closed after its third"


def test_a_connection_lost_mid_pipeline_fails_only_the_calls_left_unanswered(poser: Poser) -> None:
    """Whether the server did a request it never answered is not known: that call fails, clearly, and no
    other does (a real Toxiproxy that is killed does this at any point; the poser does it at a known one)."""
    poser.answer = Answer(b"", status=204, hangs_up_after=3)
    _, outcomes = _removed_at_once(poser, 10)
    assert outcomes[:3] == [True] * 3
    assert all(isinstance(o, BackendError) and "unreachable" in str(o) for o in outcomes[3:]), outcomes[3:]


def test_a_call_stalled_on_one_proxy_holds_up_no_call_to_another(poser: Poser) -> None:
    """Calls to each proxy are a pipeline of their own: one proxy's stalled removal (a real Toxiproxy's
    lock, Shopify/toxiproxy#558, which cannot be brought about at will) delays no other proxy's."""
    poser.answer = Answer(b"", status=204, stalls_on="/proxies/stuck/")
    client = ToxiproxyClient(poser.url, timeout=2)

    async def at_once() -> list[str]:
        ended: list[str] = []

        async def remove(proxy: str, toxic: str) -> None:
            try:
                await client.remove_toxic(proxy, toxic)
                ended.append(proxy)
            except BackendError:
                ended.append(f"{proxy} failed")

        await asyncio.gather(remove("stuck", "t"), *(remove(f"p{i % 3}", f"t{i}") for i in range(9)))
        return ended

    ended = asyncio.run(at_once())
    assert ended[-1] == "stuck failed", ended
    assert sorted(ended[:-1]) == ["p0"] * 3 + ["p1"] * 3 + ["p2"] * 3, "every other proxy's removal before it"
