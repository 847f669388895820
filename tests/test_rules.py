"""`drillctl rules`: the rules pass the real `promtool check rules` (Debian's prometheus package), and `promtool test
rules` evaluates them on series shaped as a Pushgateway serves drillctl's pushes: which runs alert, and when."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from orchestrator.loading import load_drill
from orchestrator.rules import RuleOptions, rules_file
from tests.support import ROOT, run, write

GAMEDAY = ROOT / "drills" / "gamedays" / "release-rehearsal.yaml"
QUICKSTART = ROOT / "drills" / "examples" / "quickstart.yaml"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary is not None, "promtool comes with the prometheus package (scripts/install-system-packages.sh)"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)


def test_promtool_accepts_the_rules_file_and_the_prometheusrule_of_a_game_day(tmp_path: Path) -> None:
    plain = run("rules", str(GAMEDAY), "--runbook-base", "https://git.example/ops/blob/main/")
    assert plain.returncode == 0, plain.stderr
    path = tmp_path / "rules.yaml"
    path.write_text(plain.stdout)
    checked = promtool("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    (group,) = yaml.safe_load(plain.stdout)["groups"]
    assert group["name"] == "drillctl-gameday-release-rehearsal"
    assert f"SUCCESS: {len(group['rules'])} rules found" in checked.stdout
    alerts = [(r["alert"], r["labels"]["drill"], r["labels"].get("sla")) for r in group["rules"]]
    assert ("DrillctlSlaBreached", "quickstart", "orders-recover-fast") in alerts
    assert ("DrillctlFaultActiveAfterRun", "quickstart", None) in alerts
    assert len(alerts) == len(set(alerts)), "each alert is told apart by its labels (promtool refuses duplicates)"
    recover = next(r for r in group["rules"] if r["labels"].get("sla") == "orders-recover-fast")
    assert recover["annotations"]["runbook_url"] == (
        "https://git.example/ops/blob/main/runbooks/quickstart.md#orders-recovery-too-slow"
    )

    manifest = run("rules", str(GAMEDAY), "--format", "prometheusrule", "-n", "monitoring")
    assert manifest.returncode == 0, manifest.stderr
    document = yaml.safe_load(manifest.stdout)
    assert document["apiVersion"] == "monitoring.coreos.com/v1" and document["kind"] == "PrometheusRule"
    assert document["metadata"]["namespace"] == "monitoring"
    assert document["spec"]["groups"] == yaml.safe_load(run("rules", str(GAMEDAY)).stdout)["groups"]
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(document["spec"]))
    assert promtool("check", "rules", str(spec)).returncode == 0


def test_rules_of_an_invalid_file_exit_2_naming_it(tmp_path: Path) -> None:
    path = write(tmp_path, {"apiVersion": "drillctl.dev/v1", "kind": "Drill", "metadata": {"name": "x"}})
    refused = run("rules", str(path))
    assert refused.returncode == 2 and f"{path}" in refused.stderr and not refused.stdout


def series(metric: str, values: str, **labels: str) -> dict[str, str]:
    matchers = ",".join(f'{k}="{v}"' for k, v in {"job": "drillctl", "drill": "quickstart", **labels}.items())
    return {"series": f"{metric}{{{matchers}}}", "values": values}


def alert(name: str, run_id: str, **labels: str) -> dict[str, Any]:
    severity = "warning" if name == "DrillctlSlaBreached" else "critical"
    return {"exp_labels": {"job": "drillctl", "drill": "quickstart", "run_id": run_id, "severity": severity, **labels}}


def test_the_rules_alert_for_the_runs_they_mean_and_only_while_they_mean_it(tmp_path: Path) -> None:
    """One-minute steps for 3 hours. r1 ended at 1m: an SLA failed and a fault stayed active. r2 passed. r3 is
    live (pushes every minute) with its fault in place. r4 went silent at 1m mid-fault."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(rules_file("quickstart", [load_drill(QUICKSTART).spec], RuleOptions(3600, 300)))
    fault = {"fault": "inventory-latency"}
    sla = {"sla": "orders-recover-fast"}
    inputs = [
        series("drillctl_sla_passed", "0x180", run_id="r1", **sla),
        series("push_time_seconds", "60x180", run_id="r1"),
        series("drillctl_fault_active", "1x180", run_id="r1", **fault),
        series("drillctl_phase", "1x180", run_id="r1", phase="done"),
        series("drillctl_sla_passed", "1x180", run_id="r2", **sla),
        series("push_time_seconds", "60x180", run_id="r2"),
        series("drillctl_fault_active", "1x180", run_id="r3", **fault),
        series("drillctl_phase", "1x180", run_id="r3", phase="fault"),
        series("push_time_seconds", "0+60x180", run_id="r3"),
        series("drillctl_fault_active", "1x180", run_id="r4", **fault),
        series("push_time_seconds", "60x180", run_id="r4"),
    ]
    cases = [
        ("5m", "DrillctlSlaBreached", [alert("DrillctlSlaBreached", "r1", **sla)]),
        ("5m", "DrillctlFaultActiveAfterRun", [alert("DrillctlFaultActiveAfterRun", "r1", **fault)]),
        (
            "10m",
            "DrillctlFaultActiveAfterRun",
            [alert("DrillctlFaultActiveAfterRun", "r1", **fault), alert("DrillctlFaultActiveAfterRun", "r4", **fault)],
        ),
        ("2h", "DrillctlSlaBreached", []),  # r1's last push is over the 1h window
    ]
    tests = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": inputs,
                "alert_rule_test": [
                    {"eval_time": at, "alertname": name, "exp_alerts": _with_annotations(expected, rules, name)}
                    for at, name, expected in cases
                ],
            }
        ],
    }
    path = tmp_path / "tests.yaml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    result = promtool("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def _with_annotations(expected: list[dict[str, Any]], rules: Path, name: str) -> list[dict[str, Any]]:
    """promtool compares annotations too: each expected alert gets its rule's, with the run and fault filled in."""
    for e in expected:
        labels = e["exp_labels"]
        (rule,) = [
            r
            for r in yaml.safe_load(rules.read_text())["groups"][0]["rules"]
            if r["alert"] == name and r["labels"].get("sla") == labels.get("sla")
        ]
        e["exp_annotations"] = {
            k: v.replace("{{ $labels.run_id }}", labels["run_id"]).replace(
                "{{ $labels.fault }}", labels.get("fault", "")
            )
            for k, v in rule["annotations"].items()
        }
    return expected
