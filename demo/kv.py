"""Demo key-value store for workload drills: the `http` workload client's contract, stdlib only.

    PUT /kv/KEY  (body: the value)  -> 204 once stored
    GET /kv/KEY                     -> 200 with the value, or 404
    GET /healthz                    -> 200

Values live in memory and are appended to a data file (`--data`), which is replayed at start. With
`--sync-every 0` each write is written and fsynced before it is acknowledged: nothing acknowledged is
lost when the process is killed. With `--sync-every 1.5`, writes are acknowledged at once and persisted
by a background flush every 1.5 s: a SIGKILL loses up to that much acknowledged data, as a database with
asynchronous commit or a lagging replica does.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MAX_BODY = 4096


class Store:
    def __init__(self, path: Path, sync_every: float) -> None:
        self.values: dict[str, str] = {}
        self.lock = threading.Lock()
        self.pending: list[str] = []
        self.sync_every = sync_every
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                key, sep, value = line.partition("\t")
                if sep:
                    self.values[key] = value
        self.file = path.open("a", encoding="utf-8")
        if sync_every > 0:
            threading.Thread(target=self._flush_forever, daemon=True).start()

    def put(self, key: str, value: str) -> None:
        line = f"{key}\t{value}\n"
        with self.lock:
            self.values[key] = value
            if self.sync_every > 0:
                self.pending.append(line)
                return
            self.file.write(line)
            self.file.flush()
            os.fsync(self.file.fileno())

    def get(self, key: str) -> str | None:
        with self.lock:
            return self.values.get(key)

    def _flush_forever(self) -> None:
        while True:
            time.sleep(self.sync_every)
            with self.lock:
                lines, self.pending = self.pending, []
            if lines:
                self.file.write("".join(lines))
                self.file.flush()
                os.fsync(self.file.fileno())


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the workload client uses it
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall
    store: Store

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._reply(200, b"ok")
        elif self.path.startswith("/kv/"):
            value = self.store.get(self.path[4:])
            self._reply(404, b"") if value is None else self._reply(200, value.encode())
        else:
            self._reply(404, b"")

    def do_PUT(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if not self.path.startswith("/kv/") or length > MAX_BODY:
            self._reply(400, b"")
            return
        value = self.rfile.read(length).decode("utf-8", errors="replace")
        self.store.put(self.path[4:], value)
        self._reply(204, b"")

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data", type=Path, required=True, help="the data file (created if missing)")
    parser.add_argument("--sync-every", type=float, default=0.0, help="seconds between flushes; 0: before each ack")
    args = parser.parse_args()
    Handler.store = Store(args.data, args.sync_every)
    ThreadingHTTPServer.request_queue_size = 1024
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"kv listening on 127.0.0.1:{args.port}, data {args.data}, sync every {args.sync_every:g}s", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
