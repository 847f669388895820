"""The output of an exec into a container read within KUBE_EXEC_OUTPUT: many frames, or one frame whose
declared length is over the bound (refused before its payload is read).

KWOK serves exec without running anything and a real container prints what drillctl asks it to (one line),
so neither can be made to send a huge output: a loopback websocket server poses as the API server's exec
endpoint, speaking the `v4.channel.k8s.io` protocol the official client asks for.
"""

from __future__ import annotations

import asyncio
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from aiohttp import WSMsgType, web
from kubernetes import client

from orchestrator.kube.access import KubeConnection, bounded
from orchestrator.kube.ephemeral import exec_in
from orchestrator.limits import KUBE_EXEC_OUTPUT
from tests.bounds import bounded_said

STDOUT = b"\x01"
SUCCESS = b'\x03{"metadata":{},"status":"Success"}'


@dataclass
class Output:
    size: int = 0
    """Bytes of stdout sent in frames of 64 KiB, then the status and a close."""
    endless: bool = False
    """Frames until the client hangs up."""
    declared: int = 0
    """One frame declaring this length, with a few bytes of it: a client that reads it whole waits or grows."""


class ExecServer:
    def __init__(self) -> None:
        self.output = Output()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_get("/api/v1/namespaces/{ns}/pods/{pod}/exec", self._exec)
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.ready.set()
        self.loop.run_forever()

    async def _exec(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("v4.channel.k8s.io",))
        await ws.prepare(request)
        out = self.output
        try:
            if out.declared:
                # A frame header (binary, final, 64-bit length) and a few bytes of what it declares.
                assert request.transport is not None
                request.transport.write(b"\x82\x7f" + struct.pack("!Q", out.declared) + STDOUT + b"x" * 1000)
                await asyncio.wait_for(ws.receive(), 20)  # until the client hangs up
                return ws
            sent = 0
            while out.endless or sent < out.size:
                piece = min(65536, out.size - sent) if not out.endless else 65536
                await ws.send_bytes(STDOUT + b"x" * piece)
                sent += piece
            await ws.send_bytes(SUCCESS)
            await ws.close()
            async for message in ws:
                if message.type == WSMsgType.CLOSE:
                    break
        except (ConnectionError, asyncio.CancelledError):
            pass
        return ws

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def exec_server() -> Iterator[ExecServer]:
    server = ExecServer()
    yield server
    server.close()


def exec_output_size(url: str) -> int:
    configuration = client.Configuration()
    configuration.host = url
    conn = KubeConnection(bounded(client.ApiClient(configuration)), None, "loopback", "default", url, 5.0)
    return len(asyncio.run(exec_in(conn, "p", "default", "c", ["true"])))


def test_an_output_just_under_the_bound_is_read_and_just_over_refused(
    exec_server: ExecServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    bound = 2**18
    monkeypatch.setenv(KUBE_EXEC_OUTPUT.env, str(bound))
    # Every frame's payload counts against the bound: 4 frames of stdout with a channel byte each, the
    # status frame, and the close frame's 2-byte code.
    size = bound - 4 - len(SUCCESS) - 2
    exec_server.output = Output(size=size)
    assert bounded_said(exec_output_size, exec_server.url, seconds=10, memory_mib=128) == size
    exec_server.output = Output(size=bound)
    said = bounded_said(exec_output_size, exec_server.url, seconds=10, memory_mib=128)
    where = f"{exec_server.url}/api/v1/namespaces/default/pods/p/exec"
    assert said.startswith(f"refused: AnswerTooLarge: {where}: the output of a command run in a container is over")
    assert f"{KUBE_EXEC_OUTPUT.env}=N" in said


@pytest.mark.parametrize(
    "output", [Output(endless=True), Output(declared=2**40)], ids=["endless", "one-frame-declared-huge"]
)
def test_an_endless_or_huge_output_is_refused_at_the_bound(exec_server: ExecServer, output: Output) -> None:
    exec_server.output = output
    said = bounded_said(exec_output_size, exec_server.url, seconds=10, memory_mib=128)
    assert "the output of a command run in a container is over the limit of 1,048,576 bytes" in said
