"""The webhook POST against real local HTTP servers: an error answer and a server that never answers
are reported with what happened, within the timeout, and never raise."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from orchestrator.gameday.webhook import deliver


class Failing(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def failing() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


@pytest.fixture
def silent() -> Iterator[str]:
    """Accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield f"http://127.0.0.1:{s.getsockname()[1]}/hook"


def test_an_error_answer_is_not_delivered(failing: str) -> None:
    outcome = deliver(failing, {"gameday": "x"}, 5.0)
    assert not outcome.delivered and outcome.status == 503 and "503" in (outcome.error or "")


def test_a_server_that_never_answers_is_given_up_on_at_the_timeout(silent: str) -> None:
    began = time.monotonic()
    outcome = deliver(silent, {"gameday": "x"}, 1.0)
    took = time.monotonic() - began
    assert not outcome.delivered and outcome.status is None and "no answer within 1s" in (outcome.error or "")
    assert 0.9 < took < 10
