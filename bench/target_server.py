"""A minimal, fast HTTP + TCP target for the benchmarks, run as a process of its own.

It must not share the orchestrator's event loop or core budget more than it has to: raw
asyncio protocols (uvloop when installed), no HTTP framework. HTTP/1.1 with keep-alive; every
request gets the same 200. The TCP port accepts and closes. It prints one JSON line with its
ports once it listens, then serves until killed.

    .venv/bin/python bench/target_server.py
"""

from __future__ import annotations

import asyncio
import json
from typing import cast

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
CLOSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


class Http(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
            if b"connection: close" in head.lower():
                self.transport.write(CLOSE)
                self.transport.close()
                return
            self.transport.write(RESPONSE)


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
