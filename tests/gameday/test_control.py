"""A game day's own control FIFO: a machine's `drillctl freeze` (and `drillctl abort` of the game-day folder) reach a
real game day in its cool-down at once, not when the cool-down (a minute here) runs out. Real drills, a real
toxiproxy-server each."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from orchestrator.abort import CONTROL
from tests.gameday.test_run import gameday, short_drill
from tests.support import DRILLCTL, run, wait_while_running, write

COOLDOWN = "60s"


def _in_cooldown(tmp_path: Path) -> tuple[subprocess.Popen[str], Path, Path]:
    """A game day of two drills, 60 s apart, once its first drill has ended: the process, the runs folder and
    the game day's folder."""
    write(tmp_path, short_drill("first", "2s"), "a.yaml")
    write(tmp_path, short_drill("second", "2s"), "b.yaml")
    path = write(tmp_path, gameday(["a.yaml", "b.yaml"], cooldown=COOLDOWN), "gameday.yaml")
    runs = tmp_path / "runs"
    proc = subprocess.Popen(
        [DRILLCTL, "gameday", "run", str(path), "--runs-dir", str(runs), "-o", "json", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def first_drill_over() -> bool:
        done = list(runs.glob("first-*/report.json")) if runs.exists() else []
        return bool(done) and not (done[0].parent / CONTROL).exists()

    wait_while_running(proc, first_drill_over, 120, "the first drill to end")
    (folder,) = runs.glob("gameday-rehearsal-*")
    assert (folder / CONTROL).exists(), "the game day is reachable through its own control FIFO"
    return proc, runs, folder


def test_a_freeze_in_the_cooldown_stops_the_game_day_at_once_with_the_reason_in_its_report(tmp_path: Path) -> None:
    proc, runs, folder = _in_cooldown(tmp_path)
    asked = time.monotonic()
    frozen = run("freeze", "--reason", "incident 4711", "--runs-dir", str(runs), "-o", "json", timeout=60)
    assert frozen.returncode == 0, frozen.stderr
    out, err = proc.communicate(timeout=30)
    ended = time.monotonic() - asked
    (stopped,) = json.loads(frozen.stdout)["stopped"]
    print(f"freeze in a {COOLDOWN} cool-down -> game day reported in {stopped['waited']:.3f}s ({ended:.3f}s in all)")
    assert stopped == {"run_dir": str(folder), "ended": True, "waited": stopped["waited"], "status": "stopped"}
    assert stopped["waited"] < 10, "not the 60 s cool-down (the figure, about 0.1 s, is printed above)"
    assert proc.returncode == 3, err
    doc = json.loads(out)
    assert doc["status"] == "stopped" and doc["stop_reason"].startswith("frozen since ")
    assert doc["stop_reason"].endswith(": incident 4711")
    assert [(d["name"], d["status"]) for d in doc["drills"]] == [("first", "passed"), ("second", "skipped")]
    assert json.loads((folder / "gameday.json").read_text())["stop_reason"] == doc["stop_reason"]
    assert "incident 4711" in (folder / "index.md").read_text()
    assert not (folder / CONTROL).exists()
    assert not list(runs.glob("second-*")), "the second drill never started"


def test_abort_of_a_game_day_folder_stops_it_before_its_next_drill(tmp_path: Path) -> None:
    proc, runs, folder = _in_cooldown(tmp_path)
    aborted = run("abort", str(folder), "--reason", "enough for today", timeout=60)
    assert aborted.returncode == 0, aborted.stderr
    assert aborted.stdout.startswith(f"{folder}: stopped after ")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 3, err
    doc = json.loads(out)
    assert doc["stop_reason"] == "aborted by drillctl abort: enough for today"
    assert [(d["name"], d["status"]) for d in doc["drills"]] == [("first", "passed"), ("second", "skipped")]
    assert not (runs / "freeze.json").exists(), "an abort freezes nothing"
