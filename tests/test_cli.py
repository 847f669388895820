"""The commands that touch nothing: --help, schema, plan, validate; and the shipped quickstart, for real."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.fixtures.toxiproxy import ToxiproxyServer, free_port
from tests.support import ROOT, report_of, run, run_dirs

EXAMPLES = sorted((ROOT / "drills" / "examples").glob("*.yaml"))


@pytest.mark.parametrize("command", ["", "validate", "plan", "run", "schema"])
def test_help_teaches(command: str) -> None:
    result = run(*([command] if command else []), "--help")
    assert result.returncode == 0
    assert "Usage: drillctl" in result.stdout
    if command == "":
        assert "Exit codes" in result.stdout and "NO_COLOR" in result.stdout


def test_schema_accepts_every_shipped_drill() -> None:
    result = run("schema")
    schema = json.loads(result.stdout)
    for path in EXAMPLES:
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {
                "apiVersion": "drillctl.dev/v1",
                "kind": "Drill",
                "metadata": {"name": "x"},
                "spec": {"steady_state": {"probes": []}, "surprise": 1},
            },
            schema,
        )


def test_validate_every_shipped_drill() -> None:
    result = run("validate", str(ROOT / "drills"))
    assert result.returncode == 0, result.stdout
    assert result.stdout.count("ok ") == len(EXAMPLES)


def test_plan_lists_the_schedule_and_touches_nothing(tmp_path: Path) -> None:
    result = run(
        "plan",
        str(ROOT / "drills" / "examples" / "quickstart.yaml"),
        "--output",
        "json",
        "--toxiproxy-url",
        f"http://127.0.0.1:{free_port()}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    faults = [s for s in plan["schedule"] if "fault" in s]
    assert [f["fault"] for f in faults] == ["inventory-latency", "inventory-outage"]
    assert faults[0]["at"] == 4.0 and faults[0]["until"] == 8.0
    assert "latency=200" in faults[0]["what"]
    assert faults[1]["runbook"] == "runbooks/quickstart.md#inventory-outage"
    assert [p["name"] for p in plan["touches"]["processes"]] == ["inventory", "api"]
    assert list(tmp_path.iterdir()) == [], "plan writes nothing"


def test_plan_prints_each_fault_window_as_start_to_end(tmp_path: Path) -> None:
    result = run(
        "plan",
        str(ROOT / "drills" / "examples" / "quickstart.yaml"),
        "--toxiproxy-url",
        f"http://127.0.0.1:{free_port()}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if "inventory-latency" in x)
    assert line.split()[:3] == ["4.000s", "→", "8.000s"], line
    assert "-8.000s" not in result.stdout


def test_quickstart_runs_green_end_to_end(tmp_path: Path, toxiproxy_binary: Path) -> None:
    """What `make demo` runs: a private toxiproxy-server, the demo services, two faults, a report."""
    result = run("run", str(ROOT / "drills" / "examples" / "quickstart.yaml"), "--runs-dir", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    report = report_of(tmp_path)
    assert report["run"]["status"] == "passed"
    assert {s["name"] for s in report["slas"]} == {
        "orders-recover-fast",
        "orders-baseline-latency",
        "orders-latency-under-slow-inventory",
    }
    markdown = run_dirs(tmp_path)[0] / "report.md"
    text = markdown.read_text()
    assert "[Inventory outage](" in text and "#inventory-outage)" in text
    assert "report:" in result.stdout


def test_json_output_of_a_run_is_one_document(tmp_path: Path, toxiproxy: ToxiproxyServer) -> None:
    drill = {
        "apiVersion": "drillctl.dev/v1",
        "kind": "Drill",
        "metadata": {"name": "tiny"},
        "spec": {
            "phases": {"baseline": "500ms", "recovery": "1s"},
            "steady_state": {
                "probes": [{"type": "tcp", "name": "api", "host": "127.0.0.1", "port": toxiproxy_port(toxiproxy)}]
            },
        },
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(drill))
    result = run("run", str(path), "--runs-dir", str(tmp_path / "runs"), "--output", "json")
    document = json.loads(result.stdout)
    assert result.returncode == 0
    assert document["run"]["status"] == "passed" and "samples" not in document
    assert Path(document["report_dir"]).is_dir()


def toxiproxy_port(server: ToxiproxyServer) -> int:
    return int(server.url.rsplit(":", 1)[1])
