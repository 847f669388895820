"""A minimal, fast HTTP + TCP target for the benchmarks, run as a process of its own.

It must not share the orchestrator's event loop or core budget more than it has to: raw
asyncio protocols (uvloop when installed), no HTTP framework. HTTP/1.1 with keep-alive; every
request gets the same 200, but for a tiny in-memory key-value store under /kv/ (bench/workload_rate.py).
The TCP port accepts and closes. It prints one JSON line with its
ports once it listens, then serves until killed.

    .venv/bin/python bench/target_server.py
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import cast

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
STORE: dict[bytes, bytes] = {}
LENGTH = re.compile(rb"content-length:\s*(\d+)")
CLOSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


class Http(asyncio.Protocol):
    """Every request gets 200 "ok", except the key-value paths of the workload's `http` client:
    PUT /kv/KEY stores the body (204), GET /kv/KEY answers it (or 404)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end]
            lower = head.lower()
            found = LENGTH.search(lower)
            length = int(found[1]) if found else 0
            if len(self.buffer) < end + 4 + length:
                return  # the body is not all here yet
            body, self.buffer = self.buffer[end + 4 : end + 4 + length], self.buffer[end + 4 + length :]
            if b"connection: close" in lower:
                self.transport.write(CLOSE)
                self.transport.close()
                return
            self.transport.write(self._answer(head, body))

    def _answer(self, head: bytes, body: bytes) -> bytes:
        method, _, rest = head.partition(b" ")
        path = rest.partition(b" ")[0]
        if not path.startswith(b"/kv/"):
            return RESPONSE
        if method == b"PUT":
            STORE[path] = body
            return b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
        value = STORE.get(path)
        if value is None:
            return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(value), value)


class Tcp(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


async def serve() -> None:
    loop = asyncio.get_running_loop()
    http = await loop.create_server(Http, "127.0.0.1", 0, backlog=4096)
    tcp = await loop.create_server(Tcp, "127.0.0.1", 0, backlog=4096)
    ports = {"http": http.sockets[0].getsockname()[1], "tcp": tcp.sockets[0].getsockname()[1]}
    print(json.dumps(ports), flush=True)
    await asyncio.Event().wait()


def main() -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve())
    else:
        uvloop.run(serve())


if __name__ == "__main__":
    main()
