"""How long faults outlive a dying `drillctl run`: kill -9, a hang, SIGINT and SIGTERM, each mid-fault.

A real toxiproxy-server and two real processes: a latency toxic on a proxy, stop-the-world pauses
(gc.pause) of the upstream and a libfaketime clock skew of a second process, all injected, then:
- SIGKILL of drillctl: its watchdog sees the pipe close and reverts from the journal;
- SIGSTOP of drillctl (a hang): the watchdog misses heartbeats for 1.5s (3s before), kills it, reverts;
- SIGINT / SIGTERM: the engine itself reverts, then exits 4.
The time printed is from the signal to the last `reverted` entry in the run's journal (both wall
clock, on this host). Nothing is asserted: these are figures.

    .venv/bin/python bench/watchdog_revert.py [runs per mode, default 10]
"""

from __future__ import annotations

import json
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
import yaml

ROOT = Path(__file__).resolve().parents[1]
TOXIPROXY = ROOT / ".tools" / "bin" / "toxiproxy-server"
DRILLCTL = ROOT / ".venv" / "bin" / "drillctl"
MODES = {
    "kill -9": signal.SIGKILL,
    "hang (SIGSTOP)": signal.SIGSTOP,
    "SIGINT": signal.SIGINT,
    "SIGTERM": signal.SIGTERM,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process(name: str, port: int, **extra: object) -> dict[str, object]:
    return {
        "name": name,
        "argv": [sys.executable, str(ROOT / "demo" / "upstream.py"), "--port", str(port)],
        "ready": {"probe": {"type": "http", "name": f"{name}-ready", "url": f"http://127.0.0.1:{port}/healthz"}},
        **extra,
    }


def drill_file(folder: Path, api: str) -> Path:
    upstream, proxy_port, clock = free_port(), free_port(), free_port()
    proxy = {"name": "up", "listen": f"127.0.0.1:{proxy_port}", "upstream": f"127.0.0.1:{upstream}"}
    requests.post(api + "/proxies", json=proxy, timeout=5).raise_for_status()
    document = {
        "apiVersion": "drillctl.dev/v1",
        "kind": "Drill",
        "metadata": {"name": "bench-revert"},
        "spec": {
            "targets": {
                "local": {
                    "processes": [process("upstream", upstream), process("clocky", clock, clock="faketime")],
                    "nodes": [{"name": "a", "processes": ["upstream"]}],
                }
            },
            "proxies": [proxy],
            "steady_state": {
                "interval": "100ms",
                "tolerance": 1.0,
                "probes": [{"type": "tcp", "name": "path", "host": "127.0.0.1", "port": proxy_port}],
            },
            "phases": {"baseline": "300ms", "fault": "60s", "recovery": "1s"},
            "faults": [
                {"name": "slow", "type": "network.latency", "proxy": "up", "latency": "100ms", "duration": "50s"},
                {"name": "pause", "type": "gc.pause", "target": "a", "pause": "200ms", "every": "400ms"}
                | {"duration": "50s"},
                {"name": "skew", "type": "clock.skew", "target": "clocky", "offset": "+90s", "duration": "50s"},
            ],
        },
    }
    path = folder / "drill.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def entries(journal: Path) -> list[dict[str, object]]:
    if not journal.exists():
        return []
    out = []
    for line in journal.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def one(drill: Path, runs: Path, sig: signal.Signals, api: str) -> float | None:
    proc = subprocess.Popen(
        [str(DRILLCTL), "run", str(drill), "--runs-dir", str(runs), "--toxiproxy-url", api, "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    journal = None
    while time.monotonic() < deadline:
        dirs = list(runs.glob("*/journal.jsonl"))
        if dirs and sum(e["event"] == "injected" for e in entries(dirs[0])) == 3:
            journal = dirs[0]
            break
        time.sleep(0.02)
    if journal is None:
        proc.kill()
        proc.wait()
        return None
    sent = time.time()
    proc.send_signal(sig)
    watchdog = journal.parent / "watchdog.json"
    while time.time() < sent + 60:
        reverted = [e for e in entries(journal) if e["event"] == "reverted"]
        if len(reverted) == 3 and (sig not in (signal.SIGKILL, signal.SIGSTOP) or watchdog.exists()):
            break
        time.sleep(0.02)
    if proc.poll() is None:
        proc.wait(timeout=60)
    reverted_at = [float(str(e["wall"])) for e in entries(journal) if e["event"] == "reverted"]
    return max(reverted_at) - sent if len(reverted_at) == 3 else None


def main() -> None:
    runs_per_mode = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    port = free_port()
    server = subprocess.Popen(
        [str(TOXIPROXY), "-host", "127.0.0.1", "-port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    api = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                requests.get(api + "/version", timeout=1).raise_for_status()
                break
            except requests.RequestException:
                time.sleep(0.05)
        with tempfile.TemporaryDirectory() as tmp:
            drill = drill_file(Path(tmp), api)
            print(f"{runs_per_mode} runs per mode; time from the signal to the last fault reverted (3 faults)")
            for label, sig in MODES.items():
                times = []
                for i in range(runs_per_mode):
                    took = one(drill, Path(tmp) / f"{label.split()[0]}-{i}", sig, api)
                    if took is not None:
                        times.append(took)
                if not times:
                    print(f"  {label:>15}: no run reached its faults")
                    continue
                times.sort()
                print(
                    f"  {label:>15}: n={len(times)} min {times[0]:.3f}s median {statistics.median(times):.3f}s "
                    f"max {times[-1]:.3f}s"
                )
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
