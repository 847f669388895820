"""`drillctl gameday run` end to end: real drills (a real toxiproxy-server each, real processes, real
sockets) and a real webhook receiver, a local HTTP server in this test."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from orchestrator.model.gameday import DAYS
from tests.fixtures.toxiproxy import free_port
from tests.support import DRILLCTL, proxied_upstream_drill, run, wait_while_running, write


def short_drill(name: str, latency_p99: str) -> dict[str, Any]:
    """The demo upstream behind a proxy, 300ms of latency for 1s; the fault-phase p99 SLA decides the verdict."""
    return proxied_upstream_drill(
        name,
        interval="100ms",
        probe_timeout="2s",
        phases={"baseline": "1s", "fault": "1500ms", "recovery": "5s"},
        faults=[{"name": "slow", "type": "network.latency", "proxy": "up", "latency": "300ms", "duration": "1s"}],
        slas=[
            {"name": "recovers", "type": "recovery_window", "from": "fault_end", "max": "3s", "stable_for": "300ms"},
            {"name": "fault-p99", "type": "latency", "probe": "stock", "phase": "fault", "p99": latency_p99},
        ],
    )


def gameday(drills: list[str], **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"drills": drills}
    body.update(spec)
    return {"apiVersion": "drillctl.dev/v1", "kind": "GameDay", "metadata": {"name": "rehearsal"}, "spec": body}


class Receiver:
    """A webhook endpoint: records every POSTed JSON body."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    thread = threading.Thread(target=r.server.serve_forever, daemon=True)
    thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


def closed_window_now() -> dict[str, Any]:
    """A window that is closed right now: only the day after tomorrow (UTC)."""
    return {"timezone": "UTC", "days": [DAYS[(datetime.now(UTC).weekday() + 2) % 7]], "from": "00:00", "to": "23:59"}


def test_two_drills_one_report_junit_and_webhook(tmp_path: Path, receiver: Receiver) -> None:
    write(tmp_path, short_drill("passes", "2s"), "a-passes.yaml")
    write(tmp_path, short_drill("fails", "50ms"), "b-fails.yaml")
    path = write(
        tmp_path,
        gameday(
            ["*.yaml"],
            stop="never",
            cooldown="500ms",
            window=closed_window_now(),
            schedule="0 10 * * 2",
            webhook={"url": receiver.url, "timeout": "5s"},
        ),
        "gameday.yaml",
    )
    runs = tmp_path / "runs"
    refused = run("gameday", "run", str(path), "--runs-dir", str(runs))
    assert refused.returncode == 3, refused.stderr
    assert "outside the allowed window" in refused.stderr and not runs.exists()

    result = run("gameday", "run", str(path), "--runs-dir", str(runs), "--force", "--output", "json", timeout=240)
    assert result.returncode == 1, result.stderr  # one drill failed its SLA
    doc = json.loads(result.stdout)
    assert doc["status"] == "failed" and doc["forced"] is True and doc["lease"] is None
    assert [(d["name"], d["status"], d["exit_code"]) for d in doc["drills"]] == [
        ("passes", "passed", 0),
        ("fails", "failed", 1),
    ]
    assert doc["drills"][1]["slas_failed"] == ["fault-p99"]
    recovery = doc["drills"][0]["recovery"][0]
    assert recovery["fault"] == "slow" and recovery["time_to_recover"] is not None
    assert doc["webhook"] == {"url": receiver.url, "delivered": True, "status": 204, "error": None}

    report_dir = Path(doc["report_dir"])
    assert report_dir.parent == runs and {p.name for p in report_dir.iterdir()} == {
        "index.html",
        "index.md",
        "junit.xml",
        "gameday.json",
    }
    html = (report_dir / "index.html").read_text()
    for d in doc["drills"]:
        link = Path(d["run_dir"]).relative_to(runs)
        assert f'href="../{link}/report.html"' in html
        assert (report_dir / ".." / link / "report.html").is_file()
    assert "PASSED" in html and "FAILED" in html
    suites = ET.parse(report_dir / "junit.xml").getroot()
    assert [s.get("name") for s in suites] == ["drill.passes", "drill.fails"]
    assert suites.get("failures") == "1" and suites.get("tests") == "4"
    assert json.loads((report_dir / "gameday.json").read_text())["drills"] == doc["drills"]

    (hook,) = receiver.bodies
    assert hook["gameday"] == "rehearsal" and hook["status"] == "failed"
    assert [d["status"] for d in hook["drills"]] == ["passed", "failed"]


def test_first_failure_stops_and_a_dead_webhook_does_not_change_the_verdict(tmp_path: Path) -> None:
    write(tmp_path, short_drill("fails", "50ms"), "a-fails.yaml")
    write(tmp_path, short_drill("never-runs", "2s"), "b-never-runs.yaml")
    dead = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    path = write(
        tmp_path,
        gameday(["a-fails.yaml", "b-never-runs.yaml"], stop="first_failure", webhook={"url": dead, "timeout": "2s"}),
        "gameday.yaml",
    )
    result = run("gameday", "run", str(path), "--runs-dir", str(tmp_path / "runs"), "-o", "json", timeout=240)
    assert result.returncode == 1, result.stderr
    doc = json.loads(result.stdout)
    assert doc["status"] == "failed" and doc["stop_reason"] == "stop policy first_failure: drill fails failed"
    assert [(d["name"], d["status"]) for d in doc["drills"]] == [("fails", "failed"), ("never-runs", "skipped")]
    assert doc["drills"][1]["run_dir"] is None
    assert doc["webhook"]["delivered"] is False and doc["webhook"]["error"]
    suites = ET.parse(Path(doc["report_dir"]) / "junit.xml").getroot()
    assert suites[1].find("testcase/skipped") is not None


def test_a_drill_that_cannot_start_is_recorded_and_first_abort_stops_there(tmp_path: Path) -> None:
    broken = short_drill("cannot-start", "2s")
    broken["spec"]["targets"]["local"]["processes"][0]["argv"] = ["/nonexistent/program"]
    write(tmp_path, broken, "a-broken.yaml")
    write(tmp_path, short_drill("runs-anyway", "2s"), "b-ok.yaml")
    path = write(tmp_path, gameday(["a-broken.yaml", "b-ok.yaml"], stop="first_abort"), "gameday.yaml")
    result = run("gameday", "run", str(path), "--runs-dir", str(tmp_path / "runs"), "-o", "json", timeout=240)
    doc = json.loads(result.stdout)
    assert result.returncode == 3, result.stderr
    (first,) = [d for d in doc["drills"] if d["name"] == "cannot-start"]
    assert first["status"] in ("preflight", "preflight_failed") and "/nonexistent/program" in first["reason"]
    assert doc["drills"][1]["status"] == "skipped"  # first_abort: a drill that could not run stops the day


def test_sigterm_during_the_cooldown_ends_the_game_day_with_a_report(tmp_path: Path) -> None:
    write(tmp_path, short_drill("first", "2s"), "a.yaml")
    write(tmp_path, short_drill("second", "2s"), "b.yaml")
    path = write(tmp_path, gameday(["a.yaml", "b.yaml"], cooldown="2m"), "gameday.yaml")
    runs = tmp_path / "runs"
    proc = subprocess.Popen(
        [DRILLCTL, "gameday", "run", str(path), "--runs-dir", str(runs), "-o", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_while_running(proc, lambda: any(runs.glob("first-*/report.json")), 120, "the first drill's report")
    time.sleep(0.5)  # into the cool-down
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 3, err
    doc = json.loads(out)
    assert doc["status"] == "stopped" and doc["stop_reason"] == "received SIGTERM between drills"
    assert [(d["name"], d["status"]) for d in doc["drills"]] == [("first", "passed"), ("second", "skipped")]


def test_the_index_follows_the_game_day_and_a_killed_one_leaves_what_ran(tmp_path: Path) -> None:
    """gameday.json, index.md and index.html are written as the game day starts and after each drill (each
    replaced whole); killed with SIGKILL while its second drill runs, it leaves them saying so (the drill's
    own watchdog rolls the drill back)."""
    write(tmp_path, short_drill("first", "2s"), "a.yaml")
    write(tmp_path, short_drill("second", "2s"), "b.yaml")
    path = write(tmp_path, gameday(["a.yaml", "b.yaml"]), "gameday.yaml")
    runs = tmp_path / "runs"
    proc = subprocess.Popen(
        [DRILLCTL, "gameday", "run", str(path), "--runs-dir", str(runs)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_while_running(proc, lambda: any(runs.glob("gameday-rehearsal-*/index.html")), 60, "the index at the start")
    (folder,) = runs.glob("gameday-rehearsal-*")
    start = json.loads((folder / "gameday.json").read_text())
    assert start["status"] == "running" and start["finished_at"] is None
    assert [d["name"] for d in start["drills"]] == ["first", "second"]
    assert start["drills"][1]["status"] == "pending" and start["drills"][0]["status"] in ("pending", "running")

    second = lambda: [d for d in runs.glob("second-*") if (d / "live.json").is_file()]  # noqa: E731
    wait_while_running(proc, lambda: bool(second()), 120, "the second drill under way")
    during = json.loads((folder / "gameday.json").read_text())
    assert during["status"] == "running"
    assert [(d["name"], d["status"]) for d in during["drills"]] == [("first", "passed"), ("second", "running")]
    (first_run,) = runs.glob("first-*")
    assert during["drills"][0]["run_dir"] == str(first_run) and (first_run / "report.html").is_file()
    html = (folder / "index.html").read_text()
    assert f'href="../{first_run.name}/report.html"' in html and "PASSED" in html and "RUNNING" in html
    assert "`first` | PASSED" in (folder / "index.md").read_text()
    assert not (folder / "junit.xml").exists(), "junit.xml only once the game day ended"

    proc.kill()
    proc.communicate(timeout=30)
    (second_run,) = second()
    wait_while_running(None, lambda: (second_run / "watchdog.json").is_file(), 60, "the second drill's watchdog")
    assert json.loads((folder / "gameday.json").read_text()) == during, "the index of what ran stays"
    left = sorted(p.name for p in folder.iterdir())
    assert left == ["control", "gameday.json", "index.html", "index.md"], "and its control FIFO, no reader on it"
