"""Demo upstream: a tiny inventory service. Stdlib only, so any python3 runs it."""

from __future__ import annotations

import argparse
import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._reply(200, {"status": "ok"})
        elif self.path == "/time":
            # What this process believes the time is: wall clock (skewable) and monotonic.
            self._reply(200, {"wall": time.time(), "monotonic": time.monotonic()})
        elif self.path.startswith("/stock"):
            self._reply(200, {"sku": "demo-1", "stock": 42})
        else:
            self._reply(404, {"error": "not found"})

    def _reply(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    ThreadingHTTPServer.request_queue_size = 1024  # the default backlog of 5 drops SYNs under probing
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"upstream listening on 127.0.0.1:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
