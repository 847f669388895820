"""A Prometheus that dies mid-drill: its own stack (tests/fixtures/alerting.py `own_alerting`), SIGKILLed once the
alert fired and while the fault still holds. The drill goes on, reverts everything, and says which alert figures it
could not measure, and why, rather than judge them unseen."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import jsonschema

from orchestrator.journal import pending
from orchestrator.reporting.report_schema import REPORT_SCHEMA
from tests.alerts.test_detection_drill import detection_drill
from tests.fixtures.alerting import AlertingStack
from tests.fixtures.toxiproxy import ToxiproxyServer
from tests.support import DRILLCTL, report_of, run, run_dirs, wait_while_running


def _drill_saw_firing(runs: Path) -> bool:
    """The drill's own log says its watcher saw DemoUpstreamDown firing (the test's own look could be earlier)."""
    logs = list(runs.glob("*/drill.log.jsonl")) if runs.exists() else []
    events = [json.loads(line) for log in logs for line in log.read_text().splitlines() if line.startswith("{")]
    return any(e.get("event") == "alert_state" and e.get("state") == "firing" for e in events)


def test_prometheus_killed_mid_fault_leaves_its_figures_not_measured_with_the_poll_errors_and_all_reverted(
    tmp_path: Path, own_alerting: AlertingStack, toxiproxy: ToxiproxyServer
) -> None:
    stack = own_alerting
    warning = ['severity="warning"']
    path = detection_drill(
        tmp_path,
        stack,
        toxiproxy,
        outage=6.0,
        slas=[
            {"name": "detected", "type": "time_to_detect", "alert": "DemoUpstreamDown", "max": "4s"},
            {"name": "clears", "type": "alert_clears", "alert": "DemoUpstreamDown", "max": "3s"},
            {"name": "quiet", "type": "no_alert", "alert": "DemoCustomerImpact", "matchers": warning},
        ],
        stop_conditions=[
            {"name": "customers", "type": "alert_firing", "alert": "DemoCustomerImpact", "matchers": warning}
        ],
    )
    runs = tmp_path / "runs"
    proc = subprocess.Popen(
        [DRILLCTL, "run", str(path), "--runs-dir", str(runs)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    wait_while_running(proc, lambda: _drill_saw_firing(runs), 60, "the drill to see the alert fire")
    stack.kill_prometheus()
    killed = time.monotonic()
    out, err = proc.communicate(timeout=120)
    print(f"Prometheus killed; the drill ended {time.monotonic() - killed:.3f}s later")
    assert "Traceback" not in out + err, err
    assert proc.returncode == 1, out + err  # SLAs failed: two figures could not be measured

    report = report_of(runs)
    jsonschema.validate(report, REPORT_SCHEMA)
    assert report["run"]["status"] == "failed" and report["run"]["stopped_by"] is None
    assert report["rollback"]["reverted"] and not report["rollback"]["failed"]
    assert pending(run_dirs(runs)[0] / "journal.jsonl") == []
    proxy = toxiproxy.get("/proxies/inventory").json()
    assert proxy["enabled"] and proxy["toxics"] == []

    slas = {s["name"]: s for s in report["slas"]}
    assert slas["detected"]["passed"] and slas["detected"]["measured"] is not None, "seen before Prometheus died"
    (fault,) = report["faults"]
    (gone,) = report["alerts"]["unanswered"]
    assert gone["until"] is None and gone["failures"] >= 2, gone
    assert fault["injected_at"] < gone["first"] < fault["reverted_at"], "killed while the fault held"
    for name, what in [("clears", "may have cleared"), ("quiet", "may have fired")]:
        sla = slas[name]
        assert not sla["passed"] and sla["measured"] is None, sla
        assert sla["detail"].startswith("not measured: "), sla
        assert what in sla["detail"] and "and never again" in sla["detail"] and gone["error"] in sla["detail"]
    assert any("polls of Prometheus's alerts failed" in w for w in report["alerts"]["warnings"])

    run_dir = run_dirs(runs)[0]
    markdown = (run_dir / "report.md").read_text()
    assert "polls of Prometheus's alerts failed" in markdown and "and never again" in markdown
    assert "not measured: DemoUpstreamDown may have cleared unseen" in (run_dir / "report.html").read_text()
    assert "not measured: DemoUpstreamDown may have cleared unseen" in (run_dir / "report.junit.xml").read_text()
    again = run("report", str(run_dir), "--format", "json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["alerts"]["unanswered"] == report["alerts"]["unanswered"], "read back as written"
