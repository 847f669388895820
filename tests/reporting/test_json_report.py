"""report.json from real runs: it validates against the published schema, it holds everything the
renderers need (`drillctl report` re-renders the run's own files from it), and bad input is exit 2."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest

from orchestrator.model.timeline import Sample, Timeline
from orchestrator.reporting.html import render_html
from orchestrator.reporting.json_report import ReportFormatError, read_report, render_json, to_json, write_json
from orchestrator.reporting.junit import render_junit
from orchestrator.reporting.markdown import render_markdown
from orchestrator.reporting.report_schema import REPORT_SCHEMA
from orchestrator.reporting.series import INLINE_SAMPLES, is_long, summarize
from orchestrator.sample_store import read_samples, sha256_of
from orchestrator.sampling import Recorder
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


def test_a_real_run_streams_samples_bin_equal_to_the_reports_samples(real_runs: Runs) -> None:
    for run_dir in (real_runs.quick, real_runs.slow):
        samples = document(run_dir)["samples"]
        assert isinstance(samples, dict)
        on_disk = read_samples(run_dir / "samples.bin")
        rows = [[s.probe, s.at, s.phase, s.ok, s.latency, s.lag, s.error] for s in on_disk]
        assert len(rows) > 20 and rows == samples["rows"]
        assert samples["file"] == {
            "path": "samples.bin",
            "sha256": sha256_of(run_dir / "samples.bin"),
            "bytes": (run_dir / "samples.bin").stat().st_size,
            "samples": len(rows),
        }


ONE_FAILURE_AT = 543.21


def long_timeline(run_dir: Path, base: Timeline) -> Timeline:
    """200,000 samples of the real run's probe and a second one at 10 ms through the Recorder and its
    samples.bin: an outage from 300 to 320 s, and one lone failure at ONE_FAILURE_AT among passing samples."""
    recorder = Recorder(run_dir / "samples.bin")
    probes = (base.probes[0], "second")
    for k in range(100_000):
        at = round(k * 0.01, 9)
        recorder.phase = "baseline" if at < 100 else "fault" if at < 800 else "recovery"
        for probe in probes:
            if 300 <= at < 320:
                recorder.add(Sample(probe, at, recorder.phase, False, None, 0.0001, "connection refused"))
            elif at == ONE_FAILURE_AT and probe == probes[0]:
                recorder.add(Sample(probe, at, recorder.phase, False, 0.5, 0.0001, "lone <timeout>"))
            else:
                recorder.add(Sample(probe, at, recorder.phase, True, 0.001 + (k % 97) * 1e-5, 0.0001))
    return replace(base, probes=probes, samples=recorder.samples, end=1000.0, samples_file=recorder.close())


def test_a_long_run_keeps_report_json_small_and_renders_again_from_it(real_runs: Runs, tmp_path: Path) -> None:
    base = read_report(real_runs.quick)
    run_dir = tmp_path / "long"
    run_dir.mkdir()
    timeline = long_timeline(run_dir, base.timeline)
    assert is_long(timeline) and len(timeline.samples) == 200_000 > INLINE_SAMPLES
    report = replace(base, timeline=timeline, series=summarize(timeline), facts=replace(base.facts, run_dir=run_dir))
    write_json(report, run_dir / "report.json")
    doc = document(run_dir)
    assert validator().is_valid(doc), [e.message for e in validator().iter_errors(doc)]
    size = (run_dir / "report.json").stat().st_size
    assert size < 1_000_000, f"{size} bytes"  # every sample inline: about 12 MB
    samples = doc["samples"]
    assert isinstance(samples, dict) and "rows" not in samples and samples["count"] == 200_000
    assert samples["file"]["sha256"] == sha256_of(run_dir / "samples.bin")

    again = read_report(run_dir)
    assert render_json(again) == render_json(report)
    for render in (render_html, render_markdown, render_junit):
        assert render(again) == render(report)
    assert len(again.timeline.samples) == 200_000 and again.timeline.samples[-1].at == 999.99
    (run_dir / "samples.bin").unlink()
    assert render_html(read_report(run_dir)) == render_html(report)  # report.json alone is enough


def test_a_failure_inside_a_downsampled_bucket_stays_visible(real_runs: Runs, tmp_path: Path) -> None:
    base = read_report(real_runs.quick)
    timeline = long_timeline(tmp_path, base.timeline)
    series = summarize(timeline)
    [bucket] = [b for b in series.buckets if b.start <= ONE_FAILURE_AT < b.start + series.width and b.failures]
    assert bucket.probe == base.timeline.probes[0] and bucket.failures == 1 and bucket.samples >= 100
    assert bucket.failed_at == ONE_FAILURE_AT and bucket.error == "lone <timeout>"
    html = render_html(replace(base, timeline=timeline, series=series))
    charts = SVG.findall(html)
    assert len(charts) == 2
    marks = [re.findall(r'class="fail"[^>]*><title>([^<]*)</title>', chart) for chart in charts]
    assert any("1 of " in m and "lone &lt;timeout&gt;" in m for m in marks[0])
    assert not any("lone" in m for m in marks[1])
    outage = [m for m in marks[1] if "connection refused" in m]
    assert outage and sum(int(m.split(" of ")[0]) for m in outage) == 2000  # 20 s at 10 ms, all failed
