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

from orchestrator.errors import BackendError, DrillError
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


class Poser(ThreadingHTTPServer):
    daemon_threads = True
    answer = Answer()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Poser

    def _answer(self) -> None:
        answer = self.server.answer
        self.send_response(answer.status)
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

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._answer()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read the client's errors, not the poser's log."""


@pytest.fixture
def poser() -> Iterator[Poser]:
    server = Poser(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
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
    """The blocking call itself (what the worker thread runs), in the budget's child process."""
    client = ToxiproxyClient(url, timeout=5)
    try:
        client._api.get("/proxies")
    except DrillError as e:
        return type(e).__name__, str(e)
    return "no error", ""


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
