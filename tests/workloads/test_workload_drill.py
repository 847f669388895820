"""End to end: a workload against the demo key-value store through a node crash, checked after recovery.

The store either persists every write before acknowledging it (nothing may be lost) or flushes every 120 s
(a crash loses every write acknowledged since it started): the checker must tell the two apart."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support import report_of, run, run_dirs, write
from tests.workloads.drills import kv_drill

SLAS = [
    {"name": "no-loss", "type": "data_loss", "runbook": "runbooks/kv.md#acknowledged-writes-lost"},
    {"name": "rpo", "type": "rpo", "max": "500ms", "runbook": "runbooks/kv.md#recovery-point-too-far-back"},
    {"name": "latency", "type": "workload_latency", "phase": "baseline", "operation": "write", "p99": "400ms"},
]
RUNBOOK = """# KV runbook

## Acknowledged writes lost

The store acknowledged writes it had not persisted. Check its sync setting.

## Recovery point too far back

Writes acknowledged since the last flush were lost.
"""


def _run(tmp_path: Path, sync_every: str) -> tuple[int, dict[str, object], Path]:
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "kv.md").write_text(RUNBOOK)
    path = write(tmp_path, kv_drill(tmp_path / "kv.data", sync_every, SLAS))
    done = run("run", str(path), "--runs-dir", str(tmp_path / "runs"), "--quiet", timeout=90)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    (run_dir,) = run_dirs(tmp_path / "runs")
    return done.returncode, report_of(tmp_path / "runs"), run_dir


def test_a_store_that_acknowledges_before_persisting_loses_writes_in_a_crash(tmp_path: Path) -> None:
    code, report, run_dir = _run(tmp_path, "120")  # no flush before the crash, however slow the start
    assert code == 1
    workload = report["workload"]
    assert isinstance(workload, dict)
    crash = next(f for f in report["faults"] if f["name"] == "crash")  # type: ignore[union-attr, index]
    assert workload["verified"] and workload["keys_unverified"] == 0
    assert workload["lost"] > 0, workload
    # everything lost was acknowledged before the crash: nothing had been flushed yet
    assert workload["rpo_to"] <= crash["injected_at"] + 0.05
    assert workload["rpo"] > 1.0 and workload["rpo_resolution"] < 0.2
    # nobody could write from the crash until the node was back
    assert 0.8 < workload["write_unavailable"] < 8.0
    assert workload["write_unavailable_from"] >= crash["injected_at"] - 0.05
    slas = {s["name"]: s for s in report["slas"]}  # type: ignore[union-attr]
    assert not slas["no-loss"]["passed"] and slas["no-loss"]["unit"] == "count"
    assert not slas["rpo"]["passed"] and slas["rpo"]["resolution"] is not None
    assert slas["latency"]["passed"]
    markdown = (run_dir / "report.md").read_text()
    figures = markdown.split("Workload:")[1]
    assert "Acknowledged writes lost | **" in figures
    assert "| [Acknowledged writes lost](../../runbooks/kv.md#acknowledged-writes-lost) |" in figures
    html = (run_dir / "report.html").read_text()
    assert 'id="workload"' in html and "kv.md#recovery-point-too-far-back" in html
    assert 'name="workload_lost"' in (run_dir / "report.junit.xml").read_text()
    assert (run_dir / "operations.bin").stat().st_size == workload["file"]["bytes"]  # type: ignore[index]
    again = run("report", str(run_dir), "--format", "md")
    assert again.returncode == 0 and again.stdout == markdown  # re-rendered from report.json alone


def test_a_store_that_persists_before_acknowledging_loses_nothing(tmp_path: Path) -> None:
    code, report, _ = _run(tmp_path, "0")
    workload = report["workload"]
    assert isinstance(workload, dict)
    assert code == 0, json.dumps(report["slas"], indent=1)
    assert workload["lost"] == 0 and workload["rpo"] == 0 and workload["stale_reads"] == 0
    assert workload["acknowledged"] > 100 and workload["keys_verified"] == workload["keys_written"]
    assert workload["write_unavailable"] > 0.8  # it still could not be written while down
