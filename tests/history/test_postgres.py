"""What is the PostgreSQL history's own, against the session's real server: what it refuses, where its tables
go, an unreachable server or a wrong password (exit 3, never the password), and the commands on it: real runs
finishing together, imports of the same runs at once, `history` with labels."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from orchestrator.history.model import SCHEMA_VERSION, RunQuery
from orchestrator.history.sql import TABLES
from orchestrator.history.store import HistoryError, HistoryUnreachable, open_store
from tests.fixtures.postgres import PASSWORD, PostgresServer
from tests.fixtures.toxiproxy import free_port
from tests.history.support import record, tiny_drill, write_run
from tests.support import DRILLCTL, ROOT, run, run_dirs, write


def _tables(url: str, schema: str = "public") -> set[str]:
    with psycopg.connect(url, connect_timeout=10) as db:
        rows = db.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", [schema]).fetchall()
    return {name for (name,) in rows}


def test_what_is_no_history_is_refused_and_left_alone_and_other_tables_are_no_matter(
    postgres: PostgresServer,
) -> None:
    crowded = postgres.database()
    with psycopg.connect(crowded, autocommit=True) as db:
        db.execute("CREATE TABLE invoices (id integer)")
    open_store(crowded).close()  # a database of other things: the history's tables go beside them
    assert _tables(crowded) == {"invoices", *TABLES}

    foreign = postgres.database()
    with psycopg.connect(foreign, autocommit=True) as db:
        db.execute("CREATE TABLE runs (id integer)")
    with pytest.raises(HistoryError, match=r"is a PostgreSQL database but not a drillctl history \(tables: runs\)"):
        open_store(foreign)
    assert _tables(foreign) == {"runs"}

    newer = postgres.database()
    open_store(newer).close()
    with psycopg.connect(newer, autocommit=True) as db:
        db.execute("UPDATE meta SET value = %s WHERE key = 'schema_version'", [str(SCHEMA_VERSION + 1)])
    with pytest.raises(HistoryError, match=f"history schema {SCHEMA_VERSION + 1}") as refused:
        open_store(newer)
    assert PASSWORD not in str(refused.value) and ":***@127.0.0.1" in str(refused.value)

    empty = postgres.database()
    with pytest.raises(HistoryError, match="no history at postgresql://drillctl:\\*\\*\\*@"):
        open_store(empty, create=False)
    assert _tables(empty) == set()  # asking left nothing behind


def test_the_history_goes_into_the_schema_the_url_names(postgres: PostgresServer) -> None:
    url = postgres.database()
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("CREATE SCHEMA drills")
    store = open_store(f"{url}?options=-csearch_path%3Ddrills")
    store.record([record(1, 0.5)])
    store.close()
    assert _tables(url, "drills") == TABLES and _tables(url) == set()


def test_an_unreachable_server_or_a_wrong_password_exits_3_without_the_password(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    nowhere = f"postgresql://drillctl:{PASSWORD}@127.0.0.1:{free_port()}/drills"
    with pytest.raises(HistoryUnreachable, match="cannot reach the PostgreSQL history"):
        open_store(nowhere)
    wrong = postgres.url(password="not-" + PASSWORD)
    for url, shown in [(nowhere, nowhere.replace(PASSWORD, "***")), (wrong, wrong.replace("not-" + PASSWORD, "***"))]:
        for args in (["history", "--history", url], ["history", "import", str(tmp_path), "--history", url]):
            result = run(*args)
            assert result.returncode == 3, result.stdout + result.stderr
            assert result.stderr.startswith(f"error: cannot reach the PostgreSQL history {shown}: "), result.stderr
            assert PASSWORD not in result.stdout + result.stderr
    assert "password authentication failed" in run("history", "--history", wrong).stderr


def test_a_run_whose_history_server_is_down_keeps_its_verdict_and_says_so(tmp_path: Path) -> None:
    nowhere = f"postgresql://drillctl:{PASSWORD}@127.0.0.1:{free_port()}/drills"
    runs = tmp_path / "runs"
    result = run("run", str(write(tmp_path, tiny_drill("tiny"))), "--runs-dir", str(runs), "--history", nowhere, "-q")
    assert result.returncode == 0, result.stderr
    assert "warning: history not recorded in postgresql://drillctl:***@127.0.0.1" in result.stderr
    (run_dir,) = run_dirs(runs)
    log = (run_dir / "drill.log.jsonl").read_text()
    assert '"event": "history_not_recorded"' in log and "HistoryUnreachable" in log
    assert PASSWORD not in result.stdout + result.stderr + log


def _drillctl(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [DRILLCTL, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )


def test_two_real_runs_finishing_together_both_land_with_their_labels(postgres: PostgresServer, tmp_path: Path) -> None:
    url = postgres.database()
    runs = tmp_path / "runs"
    drills = [write(tmp_path, tiny_drill(name), f"{name}.yaml") for name in ("first", "second")]
    procs = [
        _drillctl("run", str(path), "--runs-dir", str(runs), "--history", url, "-q", "--label", f"runner={n}")
        for n, path in enumerate(drills)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert "history not recorded" not in err
    shown = run("history", "--history", url, "-o", "json")
    assert shown.returncode == 0, shown.stderr
    entries = {d["drill"]: d["runs"] for d in json.loads(shown.stdout)["drills"]}
    assert sorted(r["run"] for rs in entries.values() for r in rs) == [d.name for d in run_dirs(runs)]
    assert [(r["verdict"], r["labels"]) for r in entries["first"]] == [("PASS", {"runner": "0"})]
    assert [(r["verdict"], r["labels"]) for r in entries["second"]] == [("PASS", {"runner": "1"})]


def test_imports_of_the_same_runs_at_once_record_each_once(postgres: PostgresServer, tmp_path: Path) -> None:
    """Two folders sharing 20 runs, imported at once: every run once, each import's runs recorded or known."""
    url = postgres.database()
    shared = [replace(record(n, 0.5), run_id=f"shared-{n:02d}") for n in range(20)]
    folders = {name: tmp_path / name for name in ("a", "b")}
    for name, folder in folders.items():
        for rec in [*shared, *(replace(record(n, 0.6), run_id=f"{name}-{n:02d}") for n in range(10))]:
            write_run(folder, rec)
    procs = [_drillctl("history", "import", str(f), "--history", url, "-o", "json") for f in folders.values()]
    documents = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        documents.append(json.loads(out))
    assert all(d["history"] == url.replace(PASSWORD, "***") for d in documents)
    for document in documents:
        assert len(document["recorded"]) + len(document["known"]) == 30
    recorded = [run_id for d in documents for run_id in d["recorded"]]
    assert sorted(recorded) == sorted({*(r.run_id for r in shared), *(f"{x}-{n:02d}" for x in "ab" for n in range(10))})

    store = open_store(url, create=False)
    assert len(store.runs(RunQuery())) == 40
    store.close()
    again = run("history", "import", str(folders["a"]), "--history", url)
    assert again.returncode == 0 and again.stdout.strip().endswith(
        "recorded 0 runs and 0 game days, 30 already there, skipped 0 files"
    )
