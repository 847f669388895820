"""The test target of the real node's image: a service that reports its clock, a heartbeat and its memory.

Standard library only (the image is Debian's python3 and libfaketime). A thread beats every
BEAT_INTERVAL seconds on the monotonic clock and keeps the last beats; a pause of the process (SIGSTOP)
shows as a gap between two beats. Answers on BIND:PORT (host network, loopback):

  GET /healthz      ok
  GET /clock        {"wall": time.time(), "monotonic": ..., "faketime": $FAKETIME or null, "pod": $POD_UID or null}
  GET /beats        {"beats": [monotonic times of the kept beats], "interval": ...}
  GET /memory       {"rss": resident bytes, "cgroup": this container's memory.usage_in_bytes or null}

/clock reads the wall clock through libc (time.time), so libfaketime in LD_PRELOAD moves it.
On host networking a replacement pod may start while the pod it replaces still holds the port, so
binding is retried for BIND_WITHIN seconds, and /clock says which pod answers (POD_UID, from the
downward API).
"""

from __future__ import annotations

import collections
import errno
import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BIND = os.environ.get("BIND", "127.0.0.1")
PORT = int(os.environ.get("PORT", "8080"))
INTERVAL = float(os.environ.get("BEAT_INTERVAL", "0.05"))
KEEP = int(os.environ.get("BEATS_KEPT", "20000"))
BIND_WITHIN = float(os.environ.get("BIND_WITHIN", "60"))
CGROUP_USAGE = "/sys/fs/cgroup/memory/memory.usage_in_bytes"

beats: collections.deque[float] = collections.deque(maxlen=KEEP)
lock = threading.Lock()


def beat() -> None:
    next_at = time.monotonic()
    while True:
        now = time.monotonic()
        with lock:
            beats.append(now)
        next_at = max(next_at + INTERVAL, now)
        time.sleep(max(0.0, next_at - time.monotonic()))


def rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def cgroup_usage() -> int | None:
    try:
        with open(CGROUP_USAGE) as f:
            return int(f.read())
    except OSError:
        return None


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        if self.path == "/healthz":
            body: object = "ok"
        elif self.path == "/clock":
            body = {
                "wall": time.time(),
                "monotonic": time.monotonic(),
                "faketime": os.environ.get("FAKETIME"),
                "pod": os.environ.get("POD_UID"),
            }
        elif self.path == "/beats":
            with lock:
                body = {"beats": list(beats), "interval": INTERVAL}
        elif self.path == "/memory":
            body = {"rss": rss(), "cgroup": cgroup_usage()}
        else:
            self.send_error(404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the signature http.server calls
        pass


def bind() -> ThreadingHTTPServer:
    deadline = time.monotonic() + BIND_WITHIN
    while True:
        try:
            return ThreadingHTTPServer((BIND, PORT), Handler)
        except OSError as e:
            if e.errno != errno.EADDRINUSE or time.monotonic() >= deadline:
                raise
            time.sleep(0.1)


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    threading.Thread(target=beat, daemon=True).start()
    server = bind()
    print(f"target: serving on {BIND}:{PORT}, beat every {INTERVAL}s", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
