"""Crash safety: kill -9 of drillctl mid-fault, `drillctl recover`, and runs refused while faults are left.

The SIGKILL is real; the watchdog that rolls back is the one `drillctl run` starts.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import requests

from orchestrator.journal import Journal
from orchestrator.model.undo import Undo
from tests.fixtures.toxiproxy import ToxiproxyServer, free_port
from tests.support import (
    DRILLCTL,
    drill,
    drill_behind_created_proxy,
    run,
    run_dirs,
    upstream_process,
    wait_while_running,
    write,
)


def _port_open(port: int) -> bool:
    try:
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5)
    except requests.RequestException:
        return False
    return True


def test_kill_9_mid_fault_is_rolled_back_by_the_watchdog(tmp_path: Path, toxiproxy: ToxiproxyServer) -> None:
    document = drill_behind_created_proxy(
        toxiproxy.url,
        interval="50ms",
        phases={"baseline": "1s", "fault": "60s", "recovery": "5s"},
        faults=[
            {"name": "slow", "type": "network.latency", "proxy": "up", "latency": "100ms", "duration": "50s"},
            {"name": "cut", "type": "network.down", "proxy": "up", "start": "300ms", "duration": "50s"},
            {
                "name": "hang",
                "type": "gc.pause",
                "target": "n",
                "pause": "1s",
                "every": "2s",
                "start": "300ms",
                "duration": "50s",
            },
        ],
    )
    runs = tmp_path / "runs"
    proc = subprocess.Popen(
        [
            DRILLCTL,
            "run",
            str(write(tmp_path, document)),
            "--runs-dir",
            str(runs),
            "--toxiproxy-url",
            toxiproxy.url,
            "--quiet",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_while_running(proc, lambda: not toxiproxy.get("/proxies/up").json()["enabled"], 30, "the faults")
    (run_dir,) = run_dirs(runs)
    wait_while_running(
        proc, lambda: (run_dir / "journal.jsonl").read_text().count('"injected"') == 3, 10, "three injections"
    )
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    wait_while_running(None, lambda: (run_dir / "watchdog.json").exists(), 30, "the watchdog to roll back")
    summary = json.loads((run_dir / "watchdog.json").read_text())
    proxy = toxiproxy.get("/proxies/up").json()
    assert proxy["enabled"] is True and proxy["toxics"] == []
    assert sorted(s.rsplit("/", 1)[1] for s in summary["reverted"]) == ["cut", "hang", "slow"]
    assert summary["revert_failed"] == []
    upstream_port = int(document["spec"]["targets"]["local"]["processes"][0]["argv"][-1])
    assert not _port_open(upstream_port), "the target the run started is stopped too"
    assert run("recover", "--runs-dir", str(runs)).stdout.strip() == "nothing to recover"


def test_recover_reverts_what_a_journal_left_and_runs_are_refused_until_then(
    tmp_path: Path, toxiproxy: ToxiproxyServer
) -> None:
    body = {"name": "db", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"}
    requests.post(toxiproxy.url + "/proxies", json=body, timeout=5).raise_for_status()
    requests.post(
        toxiproxy.url + "/proxies/db/toxics",
        json={"name": "drillctl-old-slow", "type": "latency", "attributes": {"latency": 500}},
        timeout=5,
    ).raise_for_status()
    requests.post(toxiproxy.url + "/proxies/db", json={"enabled": False}, timeout=5).raise_for_status()
    runs = tmp_path / "runs"
    journal = Journal(runs / "old-run" / "journal.jsonl")
    toxic = Undo("toxiproxy.toxic", "old/slow", {"url": toxiproxy.url, "proxy": "db", "toxic": "drillctl-old-slow"})
    down = Undo("toxiproxy.down", "old/cut", {"url": toxiproxy.url, "proxy": "db", "was_enabled": True})
    for undo in (toxic, down):
        journal.record("prepared", undo)
        journal.record("injected", undo)
    journal.close()

    port = free_port()
    tiny = drill(
        steady_state={"probes": [{"type": "tcp", "name": "p", "host": "127.0.0.1", "port": port}]},
        targets={"local": {"processes": [upstream_process("svc", port)]}},
    )
    refused = run("run", str(write(tmp_path, tiny)), "--runs-dir", str(runs))
    assert refused.returncode == 3 and "drillctl recover" in refused.stderr

    result = run("recover", "--runs-dir", str(runs), "--output", "json")
    assert result.returncode == 0, result.stderr
    (settled,) = json.loads(result.stdout)["journals"]
    assert settled["reverted"] == ["old/cut", "old/slow"] and settled["failed"] == []
    proxy = toxiproxy.get("/proxies/db").json()
    assert proxy["enabled"] is True and proxy["toxics"] == []
    assert run("recover", "--runs-dir", str(runs)).stdout.strip() == "nothing to recover"
    assert run("run", str(write(tmp_path, tiny)), "--runs-dir", str(runs), "--quiet").returncode == 0


def test_recover_leaves_a_live_run_alone(tmp_path: Path) -> None:
    path = tmp_path / "live" / "journal.jsonl"
    journal = Journal(path)
    journal.record(
        "prepared", Undo("toxiproxy.toxic", "live/x", {"url": "http://127.0.0.1:9", "proxy": "p", "toxic": "t"})
    )
    try:
        result = run("recover", str(path.parent))
        assert result.returncode == 1 and "live drillctl process" in result.stdout
    finally:
        journal.close()
