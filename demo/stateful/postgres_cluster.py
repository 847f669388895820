#!/usr/bin/env python3
"""A three-member PostgreSQL 15 cluster managed by Patroni, with etcd as its store, on loopback.

drills/examples/postgres-failover.yaml adopts it: drillctl kills whichever member is primary and measures the
failover and what it lost. Replication goes through a Toxiproxy of the cluster's own (each member's
connect_address is its proxy), so a drill can make the replicas lag. Only the standard library: the drill's
resolver (`leader`) and restart (`member`) run it with any python3.

  start  [--dir D] [--base-port B] [--replication sync|async]   etcd, toxiproxy-server, pg-1..3; waits for a
                                                               leader and every replica streaming
  member --dir D --member N                                    (re)start member N's Patroni, detached
  leader [--base-port B]                                       print the member Patroni names leader
  stop   [--dir D]                                             stop every process of the cluster
Ports from B (default 15400): postgres B+1..3, proxies B+11..13, Patroni REST B+21..23, etcd B+31 (peer
B+32), Toxiproxy API B+40. Patroni and postgres run as the `postgres` user when started by root.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

MEMBERS = (1, 2, 3)
PASSWORD = "drillctl"
BIN_DIR = "/usr/lib/postgresql/15/bin"
ROOT = Path(__file__).resolve().parents[2]


def ports(base: int) -> dict[str, int]:
    named = {"etcd": base + 31, "etcd_peer": base + 32, "toxiproxy": base + 40}
    for n in MEMBERS:
        named |= {f"pg-{n}": base + n, f"proxy-{n}": base + 10 + n, f"rest-{n}": base + 20 + n}
    return named


def dsn(base: int, user: str = "postgres") -> str:
    """libpq conninfo reaching whichever member is primary (directly, not through the proxies)."""
    hosts = ",".join("127.0.0.1" for _ in MEMBERS)
    numbers = ",".join(str(base + n) for n in MEMBERS)
    return (
        f"host={hosts} port={numbers} user={user} password={PASSWORD} dbname=postgres "
        "target_session_attrs=read-write connect_timeout=1"
    )


def _as_postgres() -> dict[str, int]:
    """Popen arguments that drop root to the `postgres` user (postgres refuses to run as root)."""
    if os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam("postgres")
    return {"user": entry.pw_uid, "group": entry.pw_gid}


def _detach(argv: list[str], log: Path, **extra: int) -> None:
    """In the cluster's folder: postgres, run as `postgres`, cannot start in a working directory only root may enter
    (a checkout under /root, a test's folder)."""
    with log.open("ab") as out:
        subprocess.Popen(
            argv,
            cwd=log.parent,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            close_fds=True,
            **extra,
        )


def _member_config(folder: Path, base: int, n: int, synchronous: bool) -> str:
    p = ports(base)
    member = folder / f"pg-{n}"
    config = {
        "scope": "drillctl",
        "name": f"pg-{n}",
        "restapi": {"listen": f"127.0.0.1:{p[f'rest-{n}']}", "connect_address": f"127.0.0.1:{p[f'rest-{n}']}"},
        "etcd3": {"hosts": f"127.0.0.1:{p['etcd']}"},
        "bootstrap": {
            "dcs": {
                "ttl": 10,
                "loop_wait": 1,
                "retry_timeout": 4,
                "maximum_lag_on_failover": 16 * 1024 * 1024,
                "synchronous_mode": synchronous,
                "postgresql": {
                    "use_pg_rewind": True,
                    "parameters": {"wal_log_hints": "on", "max_wal_senders": 10, "max_replication_slots": 10},
                },
            },
            "initdb": [{"encoding": "UTF8"}],
            "pg_hba": [
                "local all all trust",
                "host replication replicator 127.0.0.1/32 md5",
                "host all all 127.0.0.1/32 md5",
            ],
        },
        "postgresql": {
            "listen": f"127.0.0.1:{p[f'pg-{n}']}",
            "connect_address": f"127.0.0.1:{p[f'proxy-{n}']}",
            "data_dir": str(member / "data"),
            "bin_dir": BIN_DIR,
            "pgpass": str(member / "pgpass"),
            "remove_data_directory_on_rewind_failure": True,
            "remove_data_directory_on_diverged_timelines": True,
            "authentication": {
                "superuser": {"username": "postgres", "password": PASSWORD},
                "replication": {"username": "replicator", "password": PASSWORD},
                "rewind": {"username": "postgres", "password": PASSWORD},
            },
            "parameters": {"unix_socket_directories": str(member), "shared_buffers": "32MB"},
        },
    }
    return json.dumps(config, indent=1)  # JSON is YAML


def _get(url: str, timeout: float = 1.0) -> object:
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        return json.loads(answer.read(1 << 20))


def cluster_state(base: int) -> list[dict[str, object]]:
    """Patroni's view of the members (GET /cluster on the first member that answers), [] if none does."""
    for n in MEMBERS:
        try:
            answer = _get(f"http://127.0.0.1:{ports(base)[f'rest-{n}']}/cluster")
        except (OSError, ValueError):
            continue
        if isinstance(answer, dict) and isinstance(answer.get("members"), list):
            return [m for m in answer["members"] if isinstance(m, dict)]
    return []


def leader(base: int) -> str | None:
    names = [
        str(m.get("name")) for m in cluster_state(base) if m.get("role") == "leader" and m.get("state") == "running"
    ]
    return names[0] if len(names) == 1 else None


def start_member(folder: Path, n: int) -> None:
    _detach(["patroni", str(folder / f"pg-{n}.yml")], folder / f"pg-{n}.log", **_as_postgres())


def _healthy(base: int, synchronous: bool) -> bool:
    members = cluster_state(base)
    streaming = [
        m
        for m in members
        if m.get("role") in ("replica", "sync_standby")
        and m.get("state") in ("running", "streaming")  # Patroni 3.0.2 says running
        and isinstance(m.get("lag"), int)
    ]
    sync = [m for m in members if m.get("role") == "sync_standby"]
    return leader(base) is not None and len(streaming) == len(MEMBERS) - 1 and (bool(sync) or not synchronous)


def start(folder: Path, base: int, synchronous: bool, timeout: float = 60.0) -> None:
    if folder.exists():
        stop(folder)
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    p = ports(base)
    toxiproxy = shutil.which("toxiproxy-server") or str(ROOT / ".tools" / "bin" / "toxiproxy-server")
    proxies = [
        {"name": f"pg-{n}", "listen": f"127.0.0.1:{p[f'proxy-{n}']}", "upstream": f"127.0.0.1:{p[f'pg-{n}']}"}
        for n in MEMBERS
    ]
    (folder / "toxiproxy.json").write_text(json.dumps(proxies))
    _detach(
        [toxiproxy, "-host", "127.0.0.1", "-port", str(p["toxiproxy"]), "-config", str(folder / "toxiproxy.json")],
        folder / "toxiproxy.log",
    )
    peer = f"http://127.0.0.1:{p['etcd_peer']}"
    _detach(
        ["etcd", "--name", "etcd", "--data-dir", str(folder / "etcd"), "--listen-client-urls",
         f"http://127.0.0.1:{p['etcd']}", "--advertise-client-urls", f"http://127.0.0.1:{p['etcd']}",
         "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", f"etcd={peer}"],
        folder / "etcd.log",
    )  # fmt: skip
    owner = _as_postgres()
    for n in MEMBERS:
        (folder / f"pg-{n}").mkdir(mode=0o700)
        (folder / f"pg-{n}.yml").write_text(_member_config(folder, base, n, synchronous))
        (folder / f"pg-{n}.log").touch()
        if owner:
            for path in (folder / f"pg-{n}", folder / f"pg-{n}.log"):
                os.chown(path, owner["user"], owner["group"])
    deadline = time.monotonic() + timeout
    start_member(folder, 1)  # the first one bootstraps; the others then copy it
    while leader(base) is None:
        _wait(deadline, folder, "no leader")
    for n in MEMBERS[1:]:
        start_member(folder, n)
    while not _healthy(base, synchronous):
        _wait(deadline, folder, "replicas not streaming")


def _wait(deadline: float, folder: Path, what: str) -> None:
    if time.monotonic() > deadline:
        for log in sorted(folder.glob("*.log")):  # what stopped it, in the caller's output (a CI log)
            print(f"--- {log.name}", *log.read_text(errors="replace").splitlines()[-12:], sep="\n", file=sys.stderr)
        raise SystemExit(f"postgres_cluster: {what} in time; see the logs in {folder}")
    time.sleep(0.2)


def _pids_of(folder: Path) -> list[int]:
    """Processes whose command line names the cluster's folder (patroni, postgres, etcd, toxiproxy-server)."""
    mark = str(folder).encode() + b"/"  # every path it passes is inside: not /tmp/x2 for /tmp/x
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if mark in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def stop(folder: Path, grace: float = 10.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in _pids_of(folder):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while _pids_of(folder) and time.monotonic() < deadline:
            time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["start", "member", "leader", "stop", "dsn"])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/drillctl-postgres"))
    parser.add_argument("--base-port", type=int, default=15400)
    parser.add_argument("--replication", choices=["sync", "async"], default="sync")
    parser.add_argument("--member", type=int, choices=MEMBERS)
    args = parser.parse_args()
    folder = args.dir.resolve()
    if args.command == "start":
        start(folder, args.base_port, args.replication == "sync")
        print(f"postgres cluster up in {folder}: {dsn(args.base_port)}")
    elif args.command == "member":
        if args.member is None:
            parser.error("member needs --member")
        start_member(folder, args.member)
    elif args.command == "leader":
        name = leader(args.base_port)
        if name is None:
            sys.exit("postgres_cluster: no single running leader")
        print(name)
    elif args.command == "dsn":
        print(dsn(args.base_port))
    else:
        stop(folder)


if __name__ == "__main__":
    main()
