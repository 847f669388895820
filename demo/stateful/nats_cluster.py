#!/usr/bin/env python3
"""A three-server NATS JetStream cluster (nats-server 2.9.10) with a stream replicated on all three, on loopback.

drills/examples/nats-jetstream-leader-loss.yaml adopts it and kills the server that leads the stream. Only the
standard library (a few lines of the NATS protocol), so the drill's resolver (`leader`) and probe (`publish`)
run with any python3.

  start   [--dir D] [--base-port B]   n1..n3, then the stream DRILL (subjects drill.>, 3 replicas); waits until
                                      it has a leader, every replica is current and publishes are acknowledged
  leader  [--base-port B]             print the server that leads the stream (the monitoring endpoint /jsz)
  publish [--base-port B]             publish one message to drill.probe and exit 0 once the stream acknowledged it
  stop    [--dir D]                   stop the servers
Ports from B (default 15500): clients B+1..3, routes B+11..13, monitoring B+21..23.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

SERVERS = (1, 2, 3)
STREAM = "DRILL"
SUBJECTS = "drill.>"


def ports(base: int) -> dict[str, int]:
    named: dict[str, int] = {}
    for n in SERVERS:
        named |= {f"client-{n}": base + n, f"route-{n}": base + 10 + n, f"monitor-{n}": base + 20 + n}
    return named


def _config(folder: Path, base: int, n: int) -> str:
    p = ports(base)
    routes = ", ".join(f"nats-route://127.0.0.1:{p[f'route-{m}']}" for m in SERVERS if m != n)
    return f"""server_name: n{n}
listen: 127.0.0.1:{p[f"client-{n}"]}
http: 127.0.0.1:{p[f"monitor-{n}"]}
pid_file: "{folder}/n{n}.pid"
jetstream {{ store_dir: "{folder}/n{n}", max_memory_store: 64MB, max_file_store: 256MB }}
cluster {{ name: drillctl, listen: 127.0.0.1:{p[f"route-{n}"]}, routes: [{routes}] }}
"""


def request(base: int, subject: str, payload: bytes, timeout: float = 1.0) -> tuple[str, bytes]:
    """One request over the NATS protocol to the first server that accepts a connection: (status, reply).
    status is "" for a reply, or the header status line's code (503: no responders)."""
    p = ports(base)
    last: OSError | None = None
    for n in SERVERS:
        try:
            with socket.create_connection(("127.0.0.1", p[f"client-{n}"]), timeout=timeout) as s:
                return _request(s, subject, payload, time.monotonic() + timeout)
        except OSError as e:
            last = e
    raise last or OSError("no server")


def _request(s: socket.socket, subject: str, payload: bytes, deadline: float) -> tuple[str, bytes]:
    reader = s.makefile("rb")
    if not reader.readline().startswith(b"INFO "):
        raise OSError("not a NATS server")
    hello = {"verbose": False, "pedantic": False, "headers": True, "no_responders": True, "protocol": 1}
    inbox = f"_INBOX.probe{os.getpid()}"
    s.sendall(
        b"CONNECT " + json.dumps(hello).encode() + b"\r\n"
        + f"SUB {inbox} 1\r\nPUB {subject} {inbox} {len(payload)}\r\n".encode() + payload + b"\r\n"
    )  # fmt: skip
    while True:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        line = reader.readline()
        if not line:
            raise OSError("connection closed")
        words = line.split()
        if words[:1] == [b"PING"]:
            s.sendall(b"PONG\r\n")
        elif words[:1] == [b"-ERR"]:
            raise OSError(line.decode(errors="replace").strip())
        elif words[:1] == [b"MSG"]:
            return "", reader.read(int(words[-1]) + 2)[:-2]
        elif words[:1] == [b"HMSG"]:
            body = reader.read(int(words[-1]) + 2)[:-2]
            head = body[: int(words[-2])]
            status = head.split(b"\r\n")[0].split()
            return (status[1].decode() if len(status) > 1 else ""), body[int(words[-2]) :]


def _get(url: str) -> object:
    with urllib.request.urlopen(url, timeout=1.0) as answer:
        return json.loads(answer.read(1 << 20))


def stream_cluster(base: int, servers: tuple[int, ...] = SERVERS) -> dict[str, object] | None:
    """The stream's cluster info (leader, replicas) from the first server whose /jsz answers with it (only the
    leader's view says whether the replicas are current)."""
    for n in servers:
        try:
            answer = _get(f"http://127.0.0.1:{ports(base)[f'monitor-{n}']}/jsz?accounts=true&streams=true")
        except (OSError, ValueError):
            continue
        for account in (answer.get("account_details") or []) if isinstance(answer, dict) else []:
            for stream in account.get("stream_detail") or []:
                if stream.get("name") == STREAM and isinstance(stream.get("cluster"), dict):
                    return dict(stream["cluster"])
    return None


def leader(base: int) -> str | None:
    cluster = stream_cluster(base)
    name = cluster.get("leader") if cluster else None
    return name if isinstance(name, str) and name else None


def _healthy(base: int) -> bool:
    name = leader(base)
    if name is None:
        return False
    cluster = stream_cluster(base, (int(name.removeprefix("n")),))
    replicas = (cluster or {}).get("replicas") or []
    current = [r for r in replicas if isinstance(r, dict) and r.get("current")]  # type: ignore[union-attr]
    return len(current) == len(SERVERS) - 1


def _create_stream(base: int) -> bool:
    config = {"name": STREAM, "subjects": [SUBJECTS], "num_replicas": len(SERVERS), "storage": "file"}
    try:
        status, reply = request(base, f"$JS.API.STREAM.CREATE.{STREAM}", json.dumps(config).encode())
    except OSError:
        return False
    return status == "" and "error" not in json.loads(reply or b"{}")


def publish(base: int) -> str | None:
    """Publish one message to drill.probe; None once the stream acknowledged it, else what went wrong."""
    try:
        status, reply = request(base, "drill.probe", b"probe")
    except OSError as e:
        return str(e)
    answer = json.loads(reply or b"{}") if status == "" else {}
    return None if "seq" in answer else f"not acknowledged: status {status or 'none'} {reply[:200]!r}"


def start(folder: Path, base: int, timeout: float = 60.0) -> None:
    if folder.exists():
        stop(folder)
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for n in SERVERS:
        (folder / f"n{n}.conf").write_text(_config(folder, base, n))
        with (folder / f"n{n}.log").open("ab") as out:
            subprocess.Popen(
                ["nats-server", "-c", str(folder / f"n{n}.conf")],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True, close_fds=True,
            )  # fmt: skip
    deadline = time.monotonic() + timeout
    while not _create_stream(base):
        _wait(deadline, folder, "stream not created")
    while not _healthy(base):
        _wait(deadline, folder, "stream replicas not current")
    # A stream whose replicas are current may still be settling its leader (seen: a drill's whole baseline of
    # publishes timed out right after start): up only once publishes are acknowledged three times running.
    acknowledged = 0
    while acknowledged < 3:
        acknowledged = acknowledged + 1 if publish(base) is None else 0
        if acknowledged == 0:
            _wait(deadline, folder, "publishes not acknowledged")


def _wait(deadline: float, folder: Path, what: str) -> None:
    if time.monotonic() > deadline:
        raise SystemExit(f"nats_cluster: {what} in time; see the logs in {folder}")
    time.sleep(0.2)


def stop(folder: Path, grace: float = 10.0) -> None:
    pids = []
    for n in SERVERS:
        with contextlib.suppress(OSError, ValueError):
            pids.append(int((folder / f"n{n}.pid").read_text().split()[0]))
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while any(Path(f"/proc/{pid}").exists() for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["start", "leader", "publish", "stop"])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/drillctl-nats"))
    parser.add_argument("--base-port", type=int, default=15500)
    args = parser.parse_args()
    folder = args.dir.resolve()
    if args.command == "start":
        start(folder, args.base_port)
        print(f"nats cluster up in {folder}: stream {STREAM} on nats://127.0.0.1:{args.base_port + 1}")
    elif args.command == "leader":
        name = leader(args.base_port)
        if name is None:
            sys.exit("nats_cluster: the stream has no leader")
        print(name)
    elif args.command == "publish":
        problem = publish(args.base_port)
        if problem is not None:
            sys.exit(f"nats_cluster: {problem}")
    else:
        stop(folder)


if __name__ == "__main__":
    main()
