"""The watchdog: its protocol on a real asyncio stream, then against a real `drillctl run` that hangs.

A hang is real: SIGSTOP freezes the whole drillctl process, so its heartbeats stop. A stuck
engine whose event loop still beats cannot be produced from outside, so the lifetime test uses
the engine's test-only hook (`DRILLCTL_TEST_FAIL_AT=hold:<fault>:hang`), which parks one step.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from orchestrator.journal import read_entries
from orchestrator.watchdog import watch
from tests.fixtures.toxiproxy import ToxiproxyServer
from tests.support import DRILLCTL, drill_behind_created_proxy, run_dirs, wait_while_running, write


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
    assert asyncio.run(_watch([b"pgid 12\n", b"beat\n"], eof=True, journal=journal))[0] == "lost"


def test_missed_beats_are_a_hang_and_rest_disarms_the_check(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    ending, took = asyncio.run(_watch([b"beat\n"], eof=False, journal=journal, hang_timeout=0.3))
    print(f"hang noticed after {took:.3f}s (timeout 0.3s)")
    assert ending == "hung" and 0.25 <= took <= 5

    async def rested() -> str:
        reader = asyncio.StreamReader()
        reader.feed_data(b"beat\nrest\n")
        task = asyncio.create_task(watch(reader, journal, 0.2))
        await asyncio.sleep(1.0)  # five hang timeouts without a beat: resting, so no hang
        assert not task.done()
        reader.feed_data(b"done\n")
        return (await asyncio.wait_for(task, 5)).ending

    assert asyncio.run(rested()) == "done"


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
    print(f"frozen -> reverted in {summary['reverted_monotonic'] - frozen:.3f}s")
    assert proc.returncode == -signal.SIGKILL
    assert summary["ending"] == "hung"
    assert [s.rsplit("/", 1)[1] for s in summary["reverted"]] == ["slow"]
    assert _toxics(toxiproxy) == [] and toxiproxy.get("/proxies/up").json()["enabled"] is True
    assert summary["reverted_monotonic"] - frozen < 20
    assert summary["stopped_process_groups"], "the run's upstream process is stopped too"


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
