"""The history commands as a user runs them: real `drillctl` processes on real SQLite files (and a real
PostgreSQL server where a test takes `location`).

A real run records itself with its labels and `history` shows it; `history import` indexes hand-made
report.json files (written by the real writer) and real game days, and skips what is not a drillctl report
or a finished game day; two imports at once both land; `compare --baseline history:last=N` judges a run
against hand-made history.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.history.model import RunQuery
from orchestrator.history.sqlite import SqliteStore
from orchestrator.history.store import open_store
from tests.fixtures.toxiproxy import free_port
from tests.history.support import record, tiny_drill, write_run
from tests.support import DRILLCTL, ROOT, drill, run, run_dirs, upstream_process, write

GAMEDAY = {
    "apiVersion": "drillctl.dev/v1",
    "kind": "GameDay",
    "metadata": {"name": "g"},
    "spec": {"drills": ["*.yaml"]},
}
"""Game day `g`: every drill beside it."""


def _paused_upstream() -> dict[str, object]:
    """The demo upstream, paused (SIGSTOP) for 400ms twice while probed with a 100ms timeout: a fault with an
    impact and a recovery, and no Toxiproxy."""
    port = free_port()
    return drill(
        "history-drill",
        targets={"local": {"processes": [upstream_process("upstream", port)]}},
        steady_state={
            "interval": "50ms",
            "probes": [{"type": "http", "name": "stock", "url": f"http://127.0.0.1:{port}/stock", "timeout": "100ms"}],
        },
        phases={"baseline": "500ms", "recovery": "3s"},
        faults=[
            {
                "name": "hiccup",
                "type": "gc.pause",
                "target": "upstream",
                "pause": "400ms",
                "every": "1s",
                "duration": "1500ms",
            }
        ],
        slas=[
            {"name": "recovers", "type": "recovery_window", "from": "fault_start", "max": "2s", "stable_for": "200ms"},
            {"name": "calm-baseline", "type": "error_rate", "phase": "baseline", "max": 0.5},
        ],
    )


def test_a_real_run_records_itself_with_its_labels_and_history_shows_it(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    path = write(tmp_path, _paused_upstream())
    result = run("run", str(path), "--runs-dir", str(runs), "--quiet", "--label", "release=1.4", "--label", "git=abc1")
    assert result.returncode == 0, result.stdout + result.stderr
    (run_dir,) = run_dirs(runs)
    report = json.loads((run_dir / "report.json").read_text())
    assert report["environment"]["labels"] == {"release": "1.4", "git": "abc1"}

    shown = run("history", "--runs-dir", str(runs))
    assert shown.returncode == 0, shown.stderr
    print(shown.stdout)
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("drill history-drill: 1 run (1 passed)") and lines[0].endswith(f"{run_dir.name} PASS")
    names = [line.split()[:3] for line in lines[2:]]
    assert names == [
        ["sla", "recovers", "1"],
        ["sla", "calm-baseline", "1"],
        ["fault", "hiccup", "time_to_recover"],
        ["fault", "hiccup", "unavailability"],
    ]
    measured = next(s for s in report["slas"] if s["name"] == "recovers")["measured"]
    assert measured > 0 and f"{measured:.3f}s" in lines[2]

    document = json.loads(run("history", "history-drill", "--runs-dir", str(runs), "-o", "json").stdout)
    (entry,) = document["drills"]
    assert [(r["run"], r["labels"]) for r in entry["runs"]] == [(run_dir.name, {"release": "1.4", "git": "abc1"})]
    figures = {(f["subject"], f["metric"]): f for f in entry["figures"]}
    assert figures[("sla recovers", "measured")]["last"] == pytest.approx(measured)
    window = report["recovery_windows"][0]
    assert figures[("fault hiccup", "time_to_recover")]["median"] == pytest.approx(window["time_to_recover"])
    assert figures[("fault hiccup", "unavailability")]["points"] == [[run_dir.name, window["unavailability"]]]

    assert run_dir.name in run("history", "--runs-dir", str(runs), "--label", "release=1.4").stdout
    other = run("history", "--runs-dir", str(runs), "--label", "release=1.5")
    assert other.returncode == 0 and other.stdout.strip() == "no runs in the history match"
    again = tmp_path / "imported.sqlite"
    assert run("history", "import", str(runs), "--history", str(again)).returncode == 0
    live, imported = SqliteStore(runs / "history.sqlite"), SqliteStore(again)
    (recorded,) = live.runs(RunQuery())
    assert recorded.labels == {"release": "1.4", "git": "abc1"} and recorded.verdict == "PASS"
    assert imported.runs(RunQuery()) == [recorded]  # the run as it ended = the run from its report.json

    recent = json.loads(run("history", "--runs-dir", str(runs), "--since", "1h", "-o", "json").stdout)
    assert [r["run"] for d in recent["drills"] for r in d["runs"]] == [run_dir.name]
    future = json.loads(run("history", "--runs-dir", str(runs), "--since", "2999-01-01", "-o", "json").stdout)
    assert future["drills"] == []


def test_a_history_that_cannot_be_written_is_said_and_the_run_keeps_its_exit_code(tmp_path: Path) -> None:
    document = tiny_drill("tiny")
    broken = tmp_path / "history.sqlite"
    broken.write_text("this is not an SQLite file\n" * 50)
    runs = tmp_path / "runs"
    result = run("run", str(write(tmp_path, document)), "--runs-dir", str(runs), "--history", str(broken), "--quiet")
    assert result.returncode == 0, result.stderr
    assert f"warning: history not recorded in {broken}" in result.stderr
    (run_dir,) = run_dirs(runs)
    assert '"event": "history_not_recorded"' in (run_dir / "drill.log.jsonl").read_text()
    assert broken.read_text().startswith("this is not an SQLite file")


def test_every_drill_of_a_game_day_records_itself_with_the_game_days_labels(tmp_path: Path) -> None:
    write(tmp_path, tiny_drill("first"), "a.yaml")
    write(tmp_path, tiny_drill("second"), "b.yaml")
    runs = tmp_path / "runs"
    result = run(
        "gameday",
        "run",
        str(write(tmp_path, GAMEDAY, "gameday.yml")),
        "--runs-dir",
        str(runs),
        "--quiet",
        "--label",
        "release=2.0",
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    store = SqliteStore(runs / "history.sqlite")
    recorded = store.runs(RunQuery(labels={"release": "2.0"}))
    assert [(r.drill, r.verdict) for r in recorded] == [("first", "PASS"), ("second", "PASS")]
    (day,) = store.runs(RunQuery(kind="gameday", labels={"release": "2.0"}))
    (folder,) = runs.glob("gameday-g-*")
    assert (day.run_id, day.drill, day.status, day.verdict, day.source) == (
        folder.name,
        "g",
        "passed",
        "PASS",
        str(folder),
    )
    assert [(d.drill, d.status, d.run_id) for d in day.drills] == [(r.drill, "passed", r.run_id) for r in recorded]

    shown = run("history", "--runs-dir", str(runs))
    assert shown.returncode == 0, shown.stderr
    assert "game day g: 1 run (1 passed)" in shown.stdout and shown.stdout.rstrip().endswith(
        "  second      1       1  passed"
    ), shown.stdout
    document = json.loads(run("history", "g", "--runs-dir", str(runs), "-o", "json").stdout)
    assert document["drills"] == []
    (entry,) = document["gamedays"]
    assert entry["gameday"] == "g" and [r["labels"] for r in entry["runs"]] == [{"release": "2.0"}]
    assert [d["run"] for d in entry["runs"][0]["drills"]] == [r.run_id for r in recorded]


def test_import_indexes_runs_once_and_skips_what_is_not_a_drillctl_report(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for n in range(3):
        write_run(runs, record(n, 0.5 + n / 10, labels={"release": "1.3"}))
    (runs / "corrupt").mkdir()
    (runs / "corrupt" / "report.json").write_text('{"schema": "drillctl.report/v1", "run": {')
    (runs / "foreign").mkdir()
    (runs / "foreign" / "report.json").write_text(json.dumps({"schema": "lighthouse/v9", "score": 97}))
    (runs / "truncated").mkdir()
    (runs / "truncated" / "report.json").write_text(json.dumps({"schema": "drillctl.report/v1", "run": {}}))

    first = run("history", "import", str(runs))
    assert first.returncode == 0, first.stderr
    print(first.stdout + first.stderr)
    skipped = sorted(first.stderr.splitlines())
    assert len(skipped) == 3, skipped
    assert skipped[0].startswith(f"skipped {runs / 'corrupt' / 'report.json'}: ") and ": it is not JSON: " in skipped[0]
    assert (
        skipped[1]
        == f"skipped {runs / 'foreign' / 'report.json'}: not a drillctl.report/v1 report (schema: 'lighthouse/v9')"
    )
    assert skipped[2].startswith(f"skipped {runs / 'truncated' / 'report.json'}: malformed drillctl.report/v1 report")
    assert first.stdout.strip() == (
        f"{runs / 'history.sqlite'}: recorded 3 runs and 0 game days, 0 already there, skipped 3 files"
    )

    again = run("history", "import", str(runs), "-o", "json")
    assert json.loads(again.stdout)["recorded"] == [] and len(json.loads(again.stdout)["known"]) == 3
    store = SqliteStore(runs / "history.sqlite")
    assert [r.labels for r in store.runs(RunQuery(drill="orders"))] == [{"release": "1.3"}] * 3


def test_import_indexes_real_game_days_with_their_drills_once_and_skips_what_is_no_finished_one(
    location: str, tmp_path: Path
) -> None:
    """A real game day (recorded by itself elsewhere) imported into an empty history gives the very entries
    it recorded itself: its own and its drills' runs; a corrupt, a foreign, a malformed and an unfinished
    (killed) gameday.json are each skipped with the reason."""
    write(tmp_path, tiny_drill("first"), "a.yaml")
    write(tmp_path, tiny_drill("second"), "b.yaml")
    runs, own = tmp_path / "runs", tmp_path / "own.sqlite"
    path = write(tmp_path, GAMEDAY, "gd.yaml")
    for labels in ([], ["--label", "release=2.1"]):
        argv = ["gameday", "run", str(path), "--runs-dir", str(runs), "--history", str(own), "--quiet", *labels]
        day = run(*argv, timeout=240)
        assert day.returncode == 0, day.stderr
    folders = sorted(runs.glob("gameday-g-*"))
    assert len(folders) == 2
    document = json.loads((folders[1] / "gameday.json").read_text())
    assert document["labels"] == {"release": "2.1"}
    bad = {
        "corrupt": '{"schema": "drillctl.gameday/v1", "drills": [',
        "foreign": json.dumps({"schema": "lighthouse/v9", "score": 97}),
        "malformed": json.dumps({**document, "drills": "first, second"}),
        "killed": json.dumps({**document, "status": "running", "finished_at": None, "report_dir": "gameday-g-x"}),
    }
    for name, text in bad.items():
        (runs / f"gameday-{name}").mkdir()
        (runs / f"gameday-{name}" / "gameday.json").write_text(text)

    first = run("history", "import", str(runs), "--history", location, "-o", "json")
    assert first.returncode == 0, first.stderr
    imported = json.loads(first.stdout)
    assert imported["gamedays"] == [f.name for f in folders] and imported["known"] == []
    assert len(imported["recorded"]) == 6  # two game days of two drills each
    reasons = dict(line.removeprefix("skipped ").split(": ", 1) for line in first.stderr.splitlines())
    assert reasons.pop(str(runs / "gameday-corrupt" / "gameday.json")).startswith("it is not JSON: ")
    gameday = "drillctl.gameday/v1 game-day report"
    assert reasons == {
        str(runs / "gameday-foreign" / "gameday.json"): f"not a {gameday} (schema: 'lighthouse/v9')",
        str(runs / "gameday-malformed" / "gameday.json"): f"malformed {gameday}: drills is not a list of objects",
        str(runs / "gameday-killed" / "gameday.json"): f"malformed {gameday}: the game day did not finish: it was"
        " killed, or it runs still and records itself at its end",
    }

    again = run("history", "import", str(runs), "--history", location)
    assert again.returncode == 0, again.stderr
    assert "recorded 0 runs and 0 game days, 6 already there, skipped 4 files" in again.stdout
    recorded, imported_store = SqliteStore(own), open_store(location, create=False)
    assert imported_store.runs(RunQuery()) == recorded.runs(RunQuery())
    assert imported_store.runs(RunQuery(kind="gameday")) == recorded.runs(RunQuery(kind="gameday"))
    (labelled,) = imported_store.runs(RunQuery(kind="gameday", labels={"release": "2.1"}))
    assert labelled.run_id == folders[1].name and [(d.drill, d.status) for d in labelled.drills] == [
        ("first", "passed"),
        ("second", "passed"),
    ]
    recorded.close()
    imported_store.close()


def test_two_imports_at_once_into_one_history_both_land(tmp_path: Path) -> None:
    history = tmp_path / "shared.sqlite"
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder in folders:
        for n in range(20):
            write_run(folder, replace(record(n, 0.5), run_id=f"{folder.name}-{n}"))
    procs = [
        subprocess.Popen(
            [DRILLCTL, "history", "import", str(f), "--history", str(history)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "NO_COLOR": "1"},
        )
        for f in folders
    ]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert "recorded 20 runs" in out
    with sqlite3.connect(history) as db:
        assert db.execute("SELECT count(*) FROM runs").fetchone() == (40,)
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def _history(location: str) -> str:
    """Twelve passing runs on staging (recovery 0.9-1.1s, one at 1.5s), a failing one, and faster runs on prod."""
    staging = {"cluster": "staging"}
    values = [1.0, 0.9, 1.1, 1.0, 1.5, 1.0, 0.95, 1.05, 1.0, 1.1, 1.0, 0.9]
    runs = [record(n, v, labels=staging) for n, v in enumerate(values)]
    runs.append(record(12, 2.5, labels=staging))  # failed: never part of a baseline
    runs += [replace(record(n, 0.3, labels={"cluster": "prod"}), run_id=f"prod-{n}") for n in range(5)]
    store = open_store(location)
    store.record(runs)
    store.close()
    return location


def test_compare_against_a_rolling_baseline_flags_a_regression_and_passes_within_the_spread(
    location: str, tmp_path: Path
) -> None:
    """On both backends: `--history` is a file or a postgresql:// URL."""
    history = _history(location)
    runs = tmp_path / "runs"
    slow = write_run(runs, record(20, 1.9, labels={"cluster": "staging"}))
    usual = write_run(runs, record(21, 1.4, labels={"cluster": "staging"}))
    spec = ["--baseline", "history:last=10", "--label", "cluster=staging", "--history", str(history)]

    worse = run("compare", *spec, str(slow))
    print(worse.stdout)
    assert worse.returncode == 1, worse.stdout + worse.stderr
    assert worse.stdout.splitlines()[0] == (
        "drill orders: median of 10 passing runs (orders-00002 .. orders-00011) (PASS) -> orders-00020 (PASS)"
    )
    assert "REGRESSION sla recovers measured: 1.000s -> 1.900s" in worse.stdout
    assert worse.stdout.rstrip().endswith("\nregression")

    within = run("compare", *spec, str(usual), "-o", "json")
    assert within.returncode == 0, within.stdout + within.stderr
    document = json.loads(within.stdout)
    assert document["regression"] is False
    assert document["baseline"] == {
        "history": "history:last=10",
        "runs": [f"orders-{n:05d}" for n in range(2, 12)],
        "verdict": "PASS",
    }
    sla = next(c for c in document["changes"] if c["subject"] == "sla recovers")
    assert sla["baseline"] == pytest.approx(1.0) and sla["allowed"] == pytest.approx(0.5)  # spread 1.5 - 1.0

    prod = run(
        "compare", "--baseline", "history:last=3", "--label", "cluster=prod", "--history", str(history), str(usual)
    )
    assert prod.returncode == 1 and "0.300s -> 1.400s" in prod.stdout  # prod's own, faster baseline


def test_compare_with_a_baseline_refuses_what_it_cannot_use(tmp_path: Path) -> None:
    history = _history(str(tmp_path / "history.sqlite"))
    new = write_run(tmp_path / "runs", record(30, 1.0))
    bad = run("compare", "--baseline", "last=10", "--history", str(history), str(new))
    assert bad.returncode == 2 and "history:last=N" in bad.stderr
    two = run("compare", "--baseline", "history:last=3", "--history", str(history), str(new), str(new))
    assert two.returncode == 2 and "give one run" in two.stderr
    one = run("compare", str(new))
    assert one.returncode == 2 and "give two runs" in one.stderr
    nowhere = run("compare", "--baseline", "history:last=3", "--history", str(tmp_path / "none.sqlite"), str(new))
    assert nowhere.returncode == 2 and "no history at" in nowhere.stderr and not (tmp_path / "none.sqlite").exists()
    unknown = run(
        "compare", "--baseline", "history:last=3", "--label", "cluster=mars", "--history", str(history), str(new)
    )
    assert (
        unknown.returncode == 2 and "no passing run of drill orders cluster=mars before orders-00030" in unknown.stderr
    )
