"""report.json from real runs: it validates against the published schema, it holds everything the
renderers need (`drillctl report` re-renders the run's own files from it), and bad input is exit 2."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

from orchestrator.reporting.json_report import ReportFormatError, read_report, to_json
from orchestrator.reporting.report_schema import REPORT_SCHEMA
from tests.reporting.conftest import Runs
from tests.support import run

SVG = re.compile(r"<svg.*?</svg>", re.S)


def validator() -> jsonschema.Draft202012Validator:
    jsonschema.Draft202012Validator.check_schema(REPORT_SCHEMA)
    return jsonschema.Draft202012Validator(REPORT_SCHEMA, format_checker=jsonschema.FormatChecker())


def document(run_dir: Path) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    return loaded


def test_real_reports_validate_against_the_published_schema(real_runs: Runs) -> None:
    for run_dir in (real_runs.quick, real_runs.slow):
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator().iter_errors(document(run_dir))]
        assert errors == [], errors


def test_the_schema_refuses_what_it_should(real_runs: Runs) -> None:
    good = document(real_runs.slow)
    assert validator().is_valid(good)
    for breakage in (
        {"schema": "drillctl.report/v0"},
        {"slas": [{"name": "x"}]},
        {"run": {**good["run"], "verdict": "MAYBE"}},  # type: ignore[dict-item]
        {"unknown": 1},
    ):
        assert not validator().is_valid({**good, **breakage}), breakage


def test_schema_command_prints_the_published_schema() -> None:
    result = run("schema", "--report")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == REPORT_SCHEMA


def test_the_runs_measured_what_happened(real_runs: Runs) -> None:
    quick, slow = document(real_runs.quick), document(real_runs.slow)
    assert quick["run"]["verdict"] == "PASS", quick["slas"]  # type: ignore[index]
    assert slow["run"]["verdict"] == "FAIL" and slow["run"]["failed_slas"] == ["stock-recovers"]  # type: ignore[index]
    [window] = slow["recovery_windows"]  # type: ignore[misc]
    print(f"1500ms cut: unavailability {window['unavailability']:.3f}s, longest outage {window['longest_outage']:.3f}s")
    assert window["recovery"] == "after_revert" and window["failing_at_injection"] is False
    assert 1.2 <= window["unavailability"] <= 2.5 and window["longest_outage"] <= window["unavailability"]
    assert window["resolution"] >= 0.05
    quote = slow["runbooks"]["runbooks/orders.md#slow-recovery"]  # type: ignore[index]
    assert quote["heading"] == "Slow recovery" and quote["text"].startswith("1. Check the connection pool")
    assert "## Errors" not in quote["text"] and "Look at the logs" not in quote["text"]
    windows = {(s["probe"], s["phase"], s["fault"]) for s in slow["probe_stats"]}  # type: ignore[index]
    assert {("stock", "baseline", None), ("stock", "fault", "cut"), ("stock", "recovery", None)} <= windows


def test_reading_report_json_back_gives_the_same_document(real_runs: Runs) -> None:
    for run_dir in (real_runs.quick, real_runs.slow):
        assert to_json(read_report(run_dir)) == document(run_dir)


@pytest.mark.parametrize(("fmt", "name"), [("md", "report.md"), ("junit", "report.junit.xml"), ("html", "report.html")])
def test_drillctl_report_renders_the_runs_own_files_again(real_runs: Runs, fmt: str, name: str) -> None:
    """Charts are compared for structure only: sample times are kept to the microsecond in report.json."""
    original = (real_runs.slow / name).read_text(encoding="utf-8")
    result = run("report", str(real_runs.slow), "--format", fmt)
    assert result.returncode == 0, result.stderr
    if fmt == "html":
        assert len(SVG.findall(result.stdout)) == len(SVG.findall(original)) == 1
        assert SVG.sub("", result.stdout) == SVG.sub("", original)
    else:
        assert result.stdout == original


def test_drillctl_report_works_from_a_copied_run_dir_alone(real_runs: Runs, tmp_path: Path) -> None:
    """Only report.json is copied, to a folder where the runbook does not exist: the quote is still there."""
    copy = tmp_path / "copied"
    copy.mkdir()
    (copy / "report.json").write_bytes((real_runs.slow / "report.json").read_bytes())
    out = copy / "again.html"
    result = run("report", str(copy), "--format", "html", "--write", str(out))
    assert result.returncode == 0, result.stderr
    html = out.read_text(encoding="utf-8")
    assert "Check the connection pool of the API" in html and 'id="runbook-stock-recovers"' in html
    as_json = run("report", str(copy / "report.json"), "--format", "json")
    assert json.loads(as_json.stdout) == document(real_runs.slow)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        ("{not json", "is not JSON"),
        ('{"schema": "something/else"}', "not a drillctl.report/v1 report"),
        ('{"schema": "drillctl.report/v1", "run": {}}', "malformed drillctl.report/v1 report"),
    ],
)
def test_unusable_report_json_is_exit_2(tmp_path: Path, content: str | None, message: str) -> None:
    if content is not None:
        (tmp_path / "report.json").write_text(content, encoding="utf-8")
    with pytest.raises(ReportFormatError, match=message):
        read_report(tmp_path)
    result = run("report", str(tmp_path))
    assert result.returncode == 2 and message in result.stderr
