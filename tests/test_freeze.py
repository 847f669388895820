"""`drillctl freeze` and `unfreeze` on a machine: real runs (a real toxiproxy-server, real processes) stopped through
their control FIFOs, refused while frozen, a game day refused and then let start, and a run's watchdog that reverts
a fault itself when a freeze holds and the run was never told."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from orchestrator.abort import ABORT, FREEZE, ControlChannel, parse_request
from orchestrator.freeze import FREEZE_FILE, freeze_path, new_freeze, read_freeze
from orchestrator.journal import read_entries
from orchestrator.recovery import unsettled
from tests.fixtures.toxiproxy import ToxiproxyServer
from tests.support import (
    DRILLCTL,
    drill_behind_created_proxy,
    proxied_upstream_drill,
    run,
    run_dirs,
    wait_while_running,
    write,
)


def _long_fault_drill(tmp_path: Path, toxiproxy: ToxiproxyServer) -> Path:
    """The upstream behind a pre-created proxy (it outlives the run, to be checked), 50 ms of latency for 50 s."""
    document = drill_behind_created_proxy(
        toxiproxy.url,
        interval="100ms",
        phases={"baseline": "500ms", "fault": "60s", "recovery": "2s"},
        faults=[{"name": "slow", "type": "network.latency", "proxy": "up", "latency": "50ms", "duration": "50s"}],
    )
    return write(tmp_path, document)


def _started_mid_fault(tmp_path: Path, toxiproxy: ToxiproxyServer) -> tuple[Path, subprocess.Popen[str], Path]:
    """`drillctl run` of the long-fault drill, once its fault is in place: the drill, the run and its directory."""
    path, runs = _long_fault_drill(tmp_path, toxiproxy), tmp_path / "runs"
    proc = subprocess.Popen(
        [DRILLCTL, "run", str(path), "--runs-dir", str(runs), "--toxiproxy-url", toxiproxy.url, "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_while_running(proc, lambda: bool(_toxics(toxiproxy)), 30, "the latency fault")
    (run_dir,) = run_dirs(runs)
    return path, proc, run_dir


def _toxics(toxiproxy: ToxiproxyServer) -> list[object]:
    toxics: list[object] = toxiproxy.get("/proxies/up/toxics").json()
    return toxics


def test_freeze_stops_a_running_drill_at_once_with_nothing_left_and_refuses_new_runs(
    tmp_path: Path, toxiproxy: ToxiproxyServer
) -> None:
    path, proc, run_dir = _started_mid_fault(tmp_path, toxiproxy)
    runs = run_dir.parent
    frozen = run("freeze", "--reason", "incident 4711:\nhands off", "--runs-dir", str(runs), "-o", "json", timeout=60)
    assert frozen.returncode == 0, frozen.stderr
    document = json.loads(frozen.stdout)
    (stopped,) = document["stopped"]
    print(f"freeze -> run rolled back and reported in {stopped['waited']:.3f}s")
    assert stopped == {"run_dir": str(run_dir), "ended": True, "waited": stopped["waited"], "status": "aborted"}
    assert stopped["waited"] < 10  # the proof's figure (about 0.1-0.3 s) is printed above and by bench/freeze_stop.py
    assert document["already_frozen"] is False and document["freeze"]["reason"] == "incident 4711: hands off"
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 4, err
    report = json.loads((run_dir / "report.json").read_text())
    assert report["run"]["stopped_by"]["kind"] == "abort"
    assert report["run"]["stopped_by"]["name"] == "drillctl freeze"
    assert report["run"]["stopped_by"]["evidence"] == "incident 4711: hands off"
    assert "aborted by drillctl freeze" in report["run"]["reason"]
    assert _toxics(toxiproxy) == [] and toxiproxy.get("/proxies/up").json()["enabled"] is True
    assert unsettled(runs) == [] and not (run_dir / "watchdog.json").exists()
    assert not (run_dir / "control").exists()

    refused = run("run", str(path), "--runs-dir", str(runs), "--toxiproxy-url", toxiproxy.url, "--quiet")
    assert refused.returncode == 3
    assert "frozen since" in refused.stderr and "incident 4711: hands off" in refused.stderr
    assert run_dirs(runs) == [run_dir], "a refused run leaves no run directory"


def test_freeze_is_idempotent_and_unfreeze_says_what_it_cleared(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    first = run("freeze", "--reason", "first", "--runs-dir", str(runs))
    assert first.returncode == 0, first.stderr
    held = read_freeze(runs)
    assert held is not None and held.reason == "first"
    assert first.stdout.splitlines() == [f"{runs}: {held.describe()}", "  no run was running"]
    again = run("freeze", "--reason", "second", "--runs-dir", str(runs), "-o", "json")
    assert again.returncode == 0, again.stderr
    document = json.loads(again.stdout)
    assert document["already_frozen"] is True and document["freeze"]["reason"] == "first"
    assert document["stopped"] == [] and document["failed"] == []
    lifted = run("unfreeze", "--runs-dir", str(runs))
    assert lifted.returncode == 0, lifted.stderr
    assert lifted.stdout.startswith(f"{runs}: cleared, was frozen since ") and lifted.stdout.rstrip().endswith(
        ": first"
    )
    assert not freeze_path(runs).exists()
    twice = run("unfreeze", "--runs-dir", str(runs), "-o", "json")
    assert twice.returncode == 0 and json.loads(twice.stdout) == {"runs_dir": str(runs), "cleared": None}


def test_a_freeze_file_that_cannot_be_read_still_freezes(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / FREEZE_FILE).write_text("{not json")
    held = read_freeze(runs)
    assert held is not None and "cannot be read" in held.reason and held.by == "unknown"
    (runs / FREEZE_FILE).write_text('["a list"]')
    held = read_freeze(runs)
    assert held is not None and "is an object, not list" in held.reason


def test_a_game_day_is_refused_while_frozen_and_starts_once_unfrozen(
    tmp_path: Path, toxiproxy: ToxiproxyServer
) -> None:
    drill = proxied_upstream_drill(
        "quick",
        interval="100ms",
        probe_timeout="1s",
        phases={"baseline": "500ms", "fault": "500ms", "recovery": "2s"},
        faults=[{"name": "slow", "type": "network.latency", "proxy": "up", "latency": "20ms", "duration": "300ms"}],
        slas=[{"name": "recovers", "type": "recovery_window", "from": "fault_end", "max": "2s", "stable_for": "200ms"}],
    )
    write(tmp_path, drill, "quick.yaml")
    gameday = {"apiVersion": "drillctl.dev/v1", "kind": "GameDay", "metadata": {"name": "weekly"}}
    path = write(tmp_path, {**gameday, "spec": {"drills": ["quick.yaml"]}}, "gameday.yaml")
    runs = tmp_path / "runs"
    args = ("gameday", "run", str(path), "--runs-dir", str(runs), "--toxiproxy-url", toxiproxy.url, "--quiet")
    assert run("freeze", "--reason", "release week", "--runs-dir", str(runs)).returncode == 0
    refused = run(*args)
    assert refused.returncode == 3
    assert "game day weekly refused: drills are frozen since" in refused.stderr and "release week" in refused.stderr
    assert run_dirs(runs) == [], "nothing started"
    assert "cleared" in run("unfreeze", "--runs-dir", str(runs)).stdout
    started = run(*args, timeout=120)
    assert started.returncode == 0, started.stderr
    assert {p.name.split("-")[0] for p in run_dirs(runs)} == {"gameday", "quick"}


def test_the_watchdog_reverts_a_fault_once_a_freeze_holds_even_if_the_run_was_never_told(
    tmp_path: Path, toxiproxy: ToxiproxyServer
) -> None:
    """The freeze file written as `drillctl freeze` writes it, but no request sent: only the watchdog can act."""
    _, proc, run_dir = _started_mid_fault(tmp_path, toxiproxy)
    runs = run_dir.parent
    freeze_path(runs).write_text(json.dumps(new_freeze("by hand", datetime.now(UTC)).to_json()))
    written = time.monotonic()
    wait_while_running(proc, lambda: not _toxics(toxiproxy), 30, "the watchdog to revert under the freeze")
    took = time.monotonic() - written
    print(f"freeze file -> fault reverted by the watchdog in {took:.3f}s (margin 3s; the fault had 50s left)")
    assert 2.5 <= took <= 20
    by_watchdog = [e for e in read_entries(run_dir / "journal.jsonl") if e.get("by") == "watchdog: lifetime"]
    assert [(e["event"], e["step_id"].rsplit("/", 1)[1]) for e in by_watchdog] == [("reverted", "slow")]
    assert proc.poll() is None, "the run lives on: it was never told"
    stopped = run("freeze", "--reason", "now tell it", "--runs-dir", str(runs), "-o", "json", timeout=60)
    assert json.loads(stopped.stdout)["already_frozen"] is True
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 4, err
    assert json.loads((run_dir / "report.json").read_text())["run"]["stopped_by"]["evidence"] == "by hand"
    assert _toxics(toxiproxy) == []


def test_requests_carry_their_verb_and_a_run_hears_its_own_late_freeze(tmp_path: Path) -> None:
    assert parse_request("freeze release week\n") == (FREEZE, "release week")
    assert parse_request("abort freeze the db\n") == (ABORT, "freeze the db")
    assert parse_request("stop now\n") == (ABORT, "stop now"), "a line written by hand is an abort, all of it"

    async def hear() -> list[tuple[str, str]]:
        channel = ControlChannel(tmp_path)
        heard: list[tuple[str, str]] = []
        done = asyncio.Event()

        def on(verb: str) -> Callable[[str], None]:
            def hear_one(reason: str) -> None:
                heard.append((verb, reason))
                done.set()

            return hear_one

        channel.post(FREEZE, "seen late\n")
        task = asyncio.create_task(channel.listen(on(ABORT), on(FREEZE)))
        try:
            await asyncio.wait_for(done.wait(), 10)
        finally:
            task.cancel()
            channel.close()
        return heard

    assert asyncio.run(hear()) == [(FREEZE, "seen late")]
