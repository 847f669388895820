"""Demo API: serves /orders by calling its inventory upstream with a client-side timeout and a
retry, the way a real service protects itself. Stdlib only.

With several `--upstream`s it fails over the way many clients do: it sticks to the current
upstream and moves to the next one after `--failover-after` consecutive failed calls, so a lost
primary costs a few failed requests (a measurable recovery window), not every request.

It exports Prometheus metrics on /metrics: `demo_orders_total{result}` (served or unavailable)
and `demo_upstream_up`, 1 while its latest call to the inventory succeeded, 0 once one failed
after its retries: what the detection drill's alert rule watches.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Upstreams:
    def __init__(self, urls: list[str], timeout: float, retries: int, failover_after: int) -> None:
        self.urls = [u.rstrip("/") for u in urls]
        self.timeout = timeout
        self.retries = retries
        self.failover_after = failover_after
        self.current = 0
        self.failures = 0
        self.lock = threading.Lock()
        self.up = 1
        self.orders = {"served": 0, "unavailable": 0}

    def count(self, served: bool) -> None:
        with self.lock:
            self.up = int(served)
            self.orders["served" if served else "unavailable"] += 1

    def exposition(self) -> bytes:
        with self.lock:
            lines = ["# TYPE demo_upstream_up gauge", f"demo_upstream_up {self.up}", "# TYPE demo_orders_total counter"]
            lines += [f'demo_orders_total{{result="{k}"}} {v}' for k, v in sorted(self.orders.items())]
        return ("\n".join(lines) + "\n").encode()

    def fetch_stock(self) -> dict[str, object] | None:
        for _ in range(self.retries + 1):
            with self.lock:
                url = self.urls[self.current]
            try:
                with urllib.request.urlopen(f"{url}/stock", timeout=self.timeout) as response:
                    body = dict(json.load(response))
                with self.lock:
                    self.failures = 0
                return body
            except (urllib.error.URLError, TimeoutError, ConnectionError, ValueError):
                self._failed()
        return None

    def _failed(self) -> None:
        with self.lock:
            self.failures += 1
            if len(self.urls) > 1 and self.failures >= self.failover_after:
                self.current = (self.current + 1) % len(self.urls)
                self.failures = 0
                print(f"{time.time():.3f} failover to {self.urls[self.current]}", flush=True)


UPSTREAMS: Upstreams


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._reply(200, {"status": "ok"})
        elif self.path == "/metrics":
            data = UPSTREAMS.exposition()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif self.path.startswith("/orders"):
            stock = UPSTREAMS.fetch_stock()
            UPSTREAMS.count(stock is not None)
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
    global UPSTREAMS
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", action="append", required=True, help="base URL; repeat for failover")
    parser.add_argument("--timeout", type=float, default=0.5, help="seconds per upstream call")
    parser.add_argument("--retries", type=int, default=1)
    parser.add_argument("--failover-after", type=int, default=3, help="consecutive failures before moving on")
    args = parser.parse_args()
    UPSTREAMS = Upstreams(args.upstream, args.timeout, args.retries, args.failover_after)
    ThreadingHTTPServer.request_queue_size = 1024  # the default backlog of 5 drops SYNs under probing
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"api listening on 127.0.0.1:{args.port}, upstreams {', '.join(UPSTREAMS.urls)}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
