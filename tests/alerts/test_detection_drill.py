"""Alert SLAs end to end: real drills against a real Prometheus (rules with a known `for:`, evaluated every 500 ms)
and a real Alertmanager routing to drillctl's own receiver (tests/fixtures/alerting.py).

The demo API exports demo_upstream_up; a network.down fault cuts its upstream, so the API fails (the probes'
measured impact) and the gauge drops at once. Prometheus then needs up to one scrape and one evaluation to see
it, and fires after the rule's `for:`: the measured time to detect is `for` plus at most a scrape and an
evaluation, within the resolution drillctl states.
"""

from __future__ import annotations

import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import requests

from orchestrator.journal import pending
from orchestrator.reporting.report_schema import REPORT_SCHEMA
from tests.fixtures.alerting import EVALUATION_S, HOLD_S, RUNBOOK, SCRAPE_S, AlertingStack
from tests.fixtures.toxiproxy import ToxiproxyServer, free_port
from tests.support import ROOT, drill, report_of, run, run_dirs, upstream_process, write

LOAD_SLACK = 0.5
"""Prometheus's own scrape and evaluation timers run late on a loaded 2-core machine too."""


def detection_drill(
    tmp_path: Path,
    stack: AlertingStack,
    toxiproxy: ToxiproxyServer,
    *,
    slas: list[dict[str, Any]],
    outage: float = 3.0,
    stop_conditions: list[dict[str, Any]] | None = None,
    refuse: list[str] | None = None,
) -> Path:
    """The demo API (scraped by the stack's Prometheus) behind proxy `inventory`, created on the shared Toxiproxy
    first so that it outlives the run and can be checked after it; the drill's runbooks beside it."""
    upstream, proxy = free_port(), free_port()
    body = {"name": "inventory", "listen": f"127.0.0.1:{proxy}", "upstream": f"127.0.0.1:{upstream}"}
    requests.post(toxiproxy.url + "/proxies", json=body, timeout=5).raise_for_status()
    (tmp_path / "runbooks").mkdir(exist_ok=True)
    shutil.copy(ROOT / "runbooks" / "detection.md", tmp_path / "runbooks" / "detection.md")
    api = {
        "name": "api",
        "argv": [
            *(sys.executable, str(ROOT / "demo" / "api.py"), "--port", str(stack.api_port)),
            *("--upstream", f"http://127.0.0.1:{proxy}", "--timeout", "0.5", "--retries", "0"),
        ],
        "ready": {"probe": {"type": "http", "name": "api-ready", "url": f"http://127.0.0.1:{stack.api_port}/healthz"}},
    }
    document = drill(
        "detection-test",
        toxiproxy={"url": toxiproxy.url},
        targets={"local": {"processes": [upstream_process("inventory", upstream), api]}},
        proxies=[body],
        alerts={
            "prometheus": stack.prometheus,
            "alertmanager": stack.alertmanager,
            "poll_interval": "100ms",
            "receiver": {"port": stack.receiver_port},
            "refuse_while_firing": [{"alert": name} for name in refuse or []],
        },
        steady_state={
            "interval": "100ms",
            "probes": [
                {"type": "http", "name": "orders", "url": f"http://127.0.0.1:{stack.api_port}/orders", "timeout": "1s"}
            ],
        },
        phases={"baseline": "1500ms", "recovery": "15s"},
        faults=[
            {
                "name": "outage",
                "type": "network.down",
                "proxy": "inventory",
                "duration": f"{outage}s",
                "runbook": RUNBOOK,
            }
        ],
        slas=slas,
        stop_conditions=stop_conditions or [],
    )
    return write(tmp_path, document)


def _slas(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in report["slas"]}


def test_detection_is_impact_plus_for_within_its_resolution(
    tmp_path: Path, alerting: AlertingStack, toxiproxy: ToxiproxyServer
) -> None:
    """time_to_detect, time_to_notify and alert_clears pass; no_alert fails on the alert that fired and passes on
    one that did not; every report format carries the timeline."""
    alerting.wait_inactive("DemoUpstreamDown")
    page = ['severity="page"']
    path = detection_drill(
        tmp_path,
        alerting,
        toxiproxy,
        slas=[
            {"name": "detected", "type": "time_to_detect", "alert": "DemoUpstreamDown", "matchers": page, "max": "3s"},
            {"name": "paged", "type": "time_to_notify", "alert": "DemoUpstreamDown", "matchers": page, "max": "4s"},
            {"name": "clears", "type": "alert_clears", "alert": "DemoUpstreamDown", "matchers": page, "max": "3s"},
            {"name": "absorbed", "type": "no_alert", "alert": "DemoUpstreamDown"},
            {"name": "quiet", "type": "no_alert", "alert": "DemoCustomerImpact", "matchers": ['severity="warning"']},
        ],
    )
    result = run("run", str(path), "--runs-dir", str(tmp_path / "runs"), timeout=90)
    assert result.returncode == 1, result.stdout + result.stderr  # `absorbed` fails: the alert did fire
    report = report_of(tmp_path / "runs")
    jsonschema.validate(report, REPORT_SCHEMA)
    slas = _slas(report)
    assert [n for n, s in slas.items() if not s["passed"]] == ["absorbed"], slas

    detected = slas["detected"]
    bound = detected["resolution"]
    assert HOLD_S - bound <= detected["measured"] <= HOLD_S + SCRAPE_S + EVALUATION_S + bound + LOAD_SLACK, detected
    assert "holds for 1s and is evaluated every 0.5s" in detected["detail"]
    paged = slas["paged"]
    assert paged["measured"] >= detected["measured"] - bound, "a page cannot leave before the alert fires"
    assert paged["measured"] - detected["measured"] < 1.5, "group_wait is 100 ms"
    assert slas["absorbed"]["measured"] > 0 and "seen firing at" in slas["absorbed"]["detail"]
    assert slas["quiet"]["measured"] == 0 and slas["quiet"]["result"] == "PASS", slas["quiet"]

    (timeline,) = report["detection"]
    steps = {s["name"]: s["at"] for s in timeline["steps"]}
    order = ["impact", "pending", "firing", "recovered", "resolved"]
    assert all(steps[n] is not None for n in [*order, "notified"]), steps
    assert [steps[n] for n in order] == sorted(steps[n] for n in order), steps
    assert timeline["runbook_problem"] is None and timeline["fault_runbook"] == RUNBOOK
    assert timeline["runbook_url"].endswith(RUNBOOK)
    assert any(d["status"] == "firing" for d in report["alerts"]["deliveries"])

    run_dir = run_dirs(tmp_path / "runs")[0]
    markdown = (run_dir / "report.md").read_text()
    assert "### Detection" in markdown and '`DemoUpstreamDown{severity="page"}`' in markdown
    cases = {c.get("name"): c for c in ET.parse(run_dir / "report.junit.xml").getroot().iter("testcase")}
    assert set(cases) == set(slas), "one test case per alert SLA"
    out = cases["detected"].findtext("system-out") or ""
    assert 'outage / DemoUpstreamDown{severity="page"}: impact' in out and "→ firing +" in out, out
    html = (run_dir / "report.html").read_text()
    assert 'id="detection"' in html and html.count('class="detect-mark"') == 6  # one chart, six steps


def test_a_for_past_the_sla_fails_detection(
    tmp_path: Path, alerting: AlertingStack, toxiproxy: ToxiproxyServer
) -> None:
    """The same drill with the rule's `for:` lengthened to 3.5s against a 3s SLA: measured, and failed."""
    alerting.wait_inactive("DemoUpstreamDown")
    alerting.set_hold(3.5)
    try:
        path = detection_drill(
            tmp_path,
            alerting,
            toxiproxy,
            outage=5.0,
            slas=[{"name": "detected", "type": "time_to_detect", "alert": "DemoUpstreamDown", "max": "3s"}],
        )
        result = run("run", str(path), "--runs-dir", str(tmp_path / "runs"), timeout=90)
    finally:
        alerting.set_hold(HOLD_S)
    assert result.returncode == 1, result.stdout + result.stderr
    detected = _slas(report_of(tmp_path / "runs"))["detected"]
    assert not detected["passed"]
    assert 3.5 - detected["resolution"] <= detected["measured"] <= 3.5 + SCRAPE_S + EVALUATION_S + 1.0, detected
    assert "holds for 3.5s" in detected["detail"]


def test_alert_firing_stop_condition_aborts_with_everything_reverted(
    tmp_path: Path, alerting: AlertingStack, toxiproxy: ToxiproxyServer
) -> None:
    alerting.wait_inactive("DemoCustomerImpact")
    path = detection_drill(
        tmp_path,
        alerting,
        toxiproxy,
        outage=8.0,
        slas=[],
        stop_conditions=[{"name": "customers", "type": "alert_firing", "alert": "DemoCustomerImpact"}],
    )
    result = run("run", str(path), "--runs-dir", str(tmp_path / "runs"), timeout=90)
    assert result.returncode == 4, result.stdout + result.stderr
    report = report_of(tmp_path / "runs")
    stopped = report["run"]["stopped_by"]
    assert stopped["kind"] == "stop_condition" and stopped["name"] == "customers"
    assert "alert DemoCustomerImpact is firing" in stopped["evidence"]
    (fault,) = report["faults"]
    assert stopped["at"] < fault["injected_at"] + 4.0, "stopped while the 8 s fault held"
    assert report["rollback"]["reverted"] and not report["rollback"]["failed"]
    assert pending(run_dirs(tmp_path / "runs")[0] / "journal.jsonl") == []
    proxy = toxiproxy.get("/proxies/inventory").json()
    assert proxy["enabled"] and proxy["toxics"] == []


def test_preflight_refuses_while_an_incident_alert_fires(
    tmp_path: Path, alerting: AlertingStack, toxiproxy: ToxiproxyServer
) -> None:
    alerting.wait_state("AlwaysFiring", "firing")
    path = detection_drill(tmp_path, alerting, toxiproxy, slas=[], refuse=["AlwaysFiring"])
    result = run("run", str(path), "--runs-dir", str(tmp_path / "runs"), timeout=60)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "alert AlwaysFiring is firing" in result.stdout + result.stderr
    report = report_of(tmp_path / "runs")
    assert report["run"]["status"] == "preflight_failed" and not report["run"]["injected"]
    assert not (run_dirs(tmp_path / "runs")[0] / "journal.jsonl").read_text().strip(), "nothing journaled"
    assert toxiproxy.get("/proxies/inventory").json()["enabled"]


def _quick_drill(tmp_path: Path, alerts: dict[str, Any], probed: str, alert: str = "DemoUpstreamDown") -> Path:
    """No target and no fault: a no_alert SLA and a probe of the real Prometheus."""
    probe = {"type": "http", "name": "prometheus", "url": probed + "/-/healthy"}
    return write(
        tmp_path,
        drill(
            "alerts-input",
            alerts=alerts,
            steady_state={"interval": "100ms", "probes": [probe]},
            phases={"baseline": "300ms", "recovery": "1s"},
            slas=[{"name": "quiet", "type": "no_alert", "alert": alert}],
        ),
    )


def test_unreachable_prometheus_or_alertmanager_fails_preflight(tmp_path: Path, alerting: AlertingStack) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    for alerts, said in [
        ({"prometheus": nowhere}, f"Prometheus at {nowhere} is not usable"),
        ({"prometheus": alerting.prometheus, "alertmanager": nowhere}, f"Alertmanager at {nowhere} is not usable"),
    ]:
        folder = tmp_path / said.split()[0]
        folder.mkdir()
        path = _quick_drill(folder, {**alerts, "timeout": "1s"}, alerting.prometheus)
        result = run("run", str(path), "--runs-dir", str(folder / "runs"), timeout=60)
        assert result.returncode == 3, result.stdout + result.stderr
        assert said in result.stdout + result.stderr
        assert "Traceback" not in result.stderr


def test_an_alert_no_rule_defines_is_a_preflight_warning_naming_the_rules(
    tmp_path: Path, alerting: AlertingStack
) -> None:
    path = _quick_drill(tmp_path, {"prometheus": alerting.prometheus}, alerting.prometheus, alert="NoSuchAlert")
    result = run("run", str(path), "--runs-dir", str(tmp_path / "runs"), timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    said, output = "alert NoSuchAlert: no alerting rule of", result.stdout + result.stderr
    assert said in output and "(rules: AlwaysFiring, DemoCustomerImpact, DemoUpstreamDown)" in output
    report = report_of(tmp_path / "runs")
    assert any(said in w for w in report["alerts"]["warnings"])
    assert said in (run_dirs(tmp_path / "runs")[0] / "report.md").read_text()


def test_the_detection_example_pages_and_lands_on_its_runbook(tmp_path: Path) -> None:
    """`drillctl run drills/examples/detection.yaml`: its own Prometheus and Alertmanager, a real page."""
    result = run("run", str(ROOT / "drills" / "examples" / "detection.yaml"), "--runs-dir", str(tmp_path), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    report = report_of(tmp_path)
    slas = _slas(report)
    assert all(s["passed"] for s in slas.values()), slas
    assert 2.0 - slas["inventory-down-detected"]["resolution"] <= slas["inventory-down-detected"]["measured"]
    (timeline,) = report["detection"]
    assert timeline["runbook_problem"] is None and timeline["runbook_url"] == "runbooks/detection.md#inventory-down"
    markdown = (run_dirs(tmp_path)[0] / "report.md").read_text()
    assert "on-call-paged" in result.stdout and "`on-call-paged`" in markdown and "### Detection" in markdown
