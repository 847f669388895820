"""The watchdog: its protocol on a real asyncio stream, the heartbeat's thread against a blocked loop, then
against a real `drillctl run` that hangs or is busy.

A hang is real: SIGSTOP freezes the whole drillctl process, so its heartbeats stop. A stuck
engine whose event loop still beats cannot be produced from outside, so the lifetime test uses
the engine's test-only hook (`DRILLCTL_TEST_FAIL_AT=hold:<fault>:hang`), which parks one step;
a busy loop, `injected:<fault>:busy`, which computes on the loop for longer than the no-beat timeout.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from orchestrator.engine import TEST_BUSY
from orchestrator.journal import read_entries
from orchestrator.watchdog import HANG_TIMEOUT, Link, heartbeat, watch
from tests.fixtures.toxiproxy import ToxiproxyServer
from tests.support import DRILLCTL, drill_behind_created_proxy, run_dirs, wait_while_running, write


def _beat(lag: float = 0.01) -> bytes:
    """A beat as the run sends it: sent now, the loop last ticked `lag` seconds ago."""
    return f"beat {time.monotonic():.6f} {lag:.3f}\n".encode()


async def _watch(lines: list[bytes], eof: bool, journal: Path, hang_timeout: float = 0.3) -> tuple[str, float]:
    reader = asyncio.StreamReader()
    for line in lines:
        reader.feed_data(line)
    if eof:
        reader.feed_eof()
    started = time.monotonic()
    seen = await asyncio.wait_for(watch(reader, journal, hang_timeout), 10)
    return seen.ending, time.monotonic() - started


def test_done_is_a_clean_end_and_eof_without_it_is_a_loss(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    assert asyncio.run(_watch([b"pgid 12\n", b"done\n"], eof=False, journal=journal))[0] == "done"
    assert asyncio.run(_watch([b"pgid 12\n", _beat()], eof=True, journal=journal))[0] == "lost"


def test_missed_beats_are_a_hang_and_rest_disarms_the_check(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    ending, took = asyncio.run(_watch([_beat()], eof=False, journal=journal, hang_timeout=0.3))
    print(f"hang noticed after {took:.3f}s (timeout 0.3s)")
    assert ending == "hung" and 0.25 <= took <= 5

    async def rested() -> str:
        reader = asyncio.StreamReader()
        reader.feed_data(_beat() + b"rest\n")
        task = asyncio.create_task(watch(reader, journal, 0.2))
        await asyncio.sleep(1.0)  # five hang timeouts without a beat: resting, so no hang
        assert not task.done()
        reader.feed_data(b"done\n")
        return (await asyncio.wait_for(task, 5)).ending

    assert asyncio.run(rested()) == "done"


def test_beats_with_a_growing_loop_lag_are_a_busy_run_until_the_lag_passes_the_stuck_bound(tmp_path: Path) -> None:
    async def busy_then_stuck() -> tuple[bool, str, float]:
        reader = asyncio.StreamReader()
        task = asyncio.create_task(watch(reader, tmp_path / "journal.jsonl", hang_timeout=0.3, loop_stuck=2.0))
        for k in range(1, 20):  # the loop has not turned for up to 1.9s, but beats keep coming: busy, alive
            reader.feed_data(_beat(k / 10))
            await asyncio.sleep(0.05)
        alive = not task.done()
        reader.feed_data(_beat(2.1))
        seen = await asyncio.wait_for(task, 5)
        return alive, seen.ending, seen.lag

    alive, ending, lag = asyncio.run(busy_then_stuck())
    assert alive
    assert ending == "stuck" and lag == 2.1


def test_beats_are_judged_by_when_they_were_sent_once_the_pipe_is_drained(tmp_path: Path) -> None:
    """A watchdog that reads late (it started late, or was descheduled) finds a backlog of beats: an old
    backlog followed by fresh beats is a live run, an old backlog and nothing since is a frozen one."""
    journal = tmp_path / "journal.jsonl"
    sent = time.monotonic()
    stale = [f"beat {sent - 2.0 + k / 10:.6f} 0.010\n".encode() for k in range(10)]  # sent 2.0-1.1s ago
    ending, took = asyncio.run(_watch([*stale, _beat(), b"done\n"], eof=False, journal=journal))
    assert ending == "done"
    ending, took = asyncio.run(_watch(stale, eof=False, journal=journal, hang_timeout=0.5))
    print(f"a stale backlog read as a hang after {took:.3f}s")
    assert ending == "hung" and took < 0.5, "the last beat was sent over 0.5s ago: no need to wait again"


def test_the_heartbeat_beats_from_its_own_thread_while_the_loop_is_blocked_and_never_after_rest() -> None:
    pipe = io.BytesIO()

    async def blocked_loop() -> None:
        beats = asyncio.create_task(heartbeat(Link(pipe), every=0.05))
        await asyncio.sleep(0.2)
        asyncio.get_running_loop().call_soon(time.sleep, 0.8)  # a callback that blocks the loop: no tick
        await asyncio.sleep(1.0)  # 0.8s of it blocked, while the thread goes on beating
        beats.cancel()
        await asyncio.gather(beats, return_exceptions=True)

    asyncio.run(blocked_loop())
    time.sleep(0.2)  # a beat still on its way would land here
    lines = pipe.getvalue().decode().splitlines()
    lags = [float(line.split()[2]) for line in lines if line.startswith("beat ")]
    print(f"{len(lags)} beats, loop lag up to {max(lags):.3f}s")
    assert lines[-1] == "rest" and lines.count("rest") == 1
    assert len([lag for lag in lags if lag >= 0.3]) >= 3, "beats kept coming while the loop was blocked"
    assert max(lags) >= 0.5 and lags[-1] < 0.5, "their lag grew with the block and fell once the loop turned"


def _drill_through_proxy(tmp_path: Path, toxiproxy: ToxiproxyServer, fault: str) -> Path:
    """A drill with a pre-created proxy (it outlives the run and can be checked) and a latency fault."""
    document = drill_behind_created_proxy(
        toxiproxy.url,
        interval="100ms",
        phases={"baseline": "500ms", "fault": "60s", "recovery": "2s"},
        faults=[{"name": "slow", "type": "network.latency", "proxy": "up", "latency": "50ms", "duration": fault}],
    )
    return write(tmp_path, document)


def _start(path: Path, runs: Path, toxiproxy: ToxiproxyServer, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [DRILLCTL, "run", str(path), "--runs-dir", str(runs), "--toxiproxy-url", toxiproxy.url, "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )


def _toxics(toxiproxy: ToxiproxyServer) -> list[Any]:
    toxics: list[Any] = toxiproxy.get("/proxies/up/toxics").json()
    return toxics


def test_a_frozen_run_is_killed_and_rolled_back(tmp_path: Path, toxiproxy: ToxiproxyServer) -> None:
    path = _drill_through_proxy(tmp_path, toxiproxy, "50s")
    runs = tmp_path / "runs"
    proc = _start(path, runs, toxiproxy)
    wait_while_running(proc, lambda: bool(_toxics(toxiproxy)), 30, "the latency fault")
    (run_dir,) = run_dirs(runs)
    frozen = time.monotonic()
    proc.send_signal(signal.SIGSTOP)  # the whole orchestrator hangs: no beat, no revert, no exit
    wait_while_running(None, lambda: proc.poll() is not None, 30, "the watchdog to kill the frozen run")
    wait_while_running(None, lambda: (run_dir / "watchdog.json").exists(), 30, "the watchdog's summary")
    summary = json.loads((run_dir / "watchdog.json").read_text())
    print(
        f"frozen -> noticed in {summary['noticed_monotonic'] - frozen:.3f}s, "
        f"reverted in {summary['reverted_monotonic'] - frozen:.3f}s"
    )
    assert proc.returncode == -signal.SIGKILL
    assert summary["ending"] == "hung"
    assert [s.rsplit("/", 1)[1] for s in summary["reverted"]] == ["slow"]
    assert _toxics(toxiproxy) == [] and toxiproxy.get("/proxies/up").json()["enabled"] is True
    assert summary["reverted_monotonic"] - frozen < 20
    assert summary["stopped_process_groups"], "the run's upstream process is stopped too"


def test_a_busy_loop_is_not_taken_for_a_hang(tmp_path: Path, toxiproxy: ToxiproxyServer) -> None:
    """The loop computes for TEST_BUSY seconds mid-fault (more than the no-beat timeout): the run lives on and
    reverts its own fault."""
    assert TEST_BUSY > HANG_TIMEOUT
    document = drill_behind_created_proxy(
        toxiproxy.url,
        interval="100ms",
        phases={"baseline": "500ms", "fault": "3s", "recovery": "1s"},
        # its deadline (2.5s + the 3s margin) comes well after the loop turns again
        faults=[{"name": "slow", "type": "network.latency", "proxy": "up", "latency": "50ms", "duration": "2500ms"}],
    )
    runs = tmp_path / "runs"
    proc = _start(write(tmp_path, document), runs, toxiproxy, DRILLCTL_TEST_FAIL_AT="injected:slow:busy")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    (run_dir,) = run_dirs(runs)
    assert not (run_dir / "watchdog.json").exists(), "the watchdog neither killed the run nor reverted for it"
    reverted = [e for e in read_entries(run_dir / "journal.jsonl") if e["event"] == "reverted"]
    assert [e.get("by") for e in reverted] == [None]
    assert _toxics(toxiproxy) == []


def test_a_stuck_step_is_reverted_at_its_deadline_while_the_run_lives(
    tmp_path: Path, toxiproxy: ToxiproxyServer
) -> None:
    path = _drill_through_proxy(tmp_path, toxiproxy, "1s")
    runs = tmp_path / "runs"
    proc = _start(path, runs, toxiproxy, DRILLCTL_TEST_FAIL_AT="hold:slow:hang")
    wait_while_running(proc, lambda: bool(_toxics(toxiproxy)), 30, "the latency fault")
    injected = time.monotonic()
    # The engine never reverts it (its step is parked); the watchdog does, at 1s + the 3s margin.
    wait_while_running(proc, lambda: not _toxics(toxiproxy), 30, "the watchdog to enforce the lifetime")
    lived = time.monotonic() - injected
    print(f"fault lived {lived:.3f}s (duration 1s + margin 3s)")
    assert proc.poll() is None, "the run itself is alive and beating"
    assert 3.0 <= lived <= 15.0
    (run_dir,) = run_dirs(runs)
    by_watchdog = [e for e in read_entries(run_dir / "journal.jsonl") if e.get("by") == "watchdog: lifetime"]
    assert [(e["event"], e["step_id"].rsplit("/", 1)[1]) for e in by_watchdog] == [("reverted", "slow")]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 4, err
    assert _toxics(toxiproxy) == [] and toxiproxy.get("/proxies/up").json()["enabled"] is True
