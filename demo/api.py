"""Demo API: serves /orders by calling the upstream (through a Toxiproxy proxy) with a
client-side timeout and one retry, the way a real service protects itself. Stdlib only.
"""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UPSTREAM = ""
TIMEOUT = 0.5
RETRIES = 1


def fetch_stock() -> dict[str, object] | None:
    for _ in range(RETRIES + 1):
        try:
            with urllib.request.urlopen(f"{UPSTREAM}/stock", timeout=TIMEOUT) as response:
                return dict(json.load(response))
        except (urllib.error.URLError, TimeoutError, ConnectionError, ValueError):
            continue
    return None


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._reply(200, {"status": "ok"})
        elif self.path.startswith("/orders"):
            stock = fetch_stock()
            if stock is None:
                self._reply(503, {"error": "upstream unavailable"})
            else:
                self._reply(200, {"order": "demo", "stock": stock["stock"]})
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
    global UPSTREAM, TIMEOUT, RETRIES
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="base URL, e.g. http://127.0.0.1:18091")
    parser.add_argument("--timeout", type=float, default=0.5, help="seconds per upstream call")
    parser.add_argument("--retries", type=int, default=1)
    args = parser.parse_args()
    UPSTREAM, TIMEOUT, RETRIES = args.upstream.rstrip("/"), args.timeout, args.retries
    ThreadingHTTPServer.request_queue_size = 1024  # the default backlog of 5 drops SYNs under probing
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"api listening on 127.0.0.1:{args.port}, upstream {UPSTREAM}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
