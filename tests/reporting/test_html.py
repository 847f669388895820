"""report.html from a real drill file and a hand-made timeline: structure, charts, links, escaping,
downsampling; and once end to end, from `drillctl run`."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from orchestrator.loading import LoadedDrill, load_drill
from orchestrator.model.timeline import FaultMark, PhaseMark, Sample, Timeline
from orchestrator.reporting.html import MAX_POINTS, render_html
from orchestrator.reporting.report import Report, RunFacts, build_report
from tests.support import run, run_dirs

EVIL = "<script>alert(1)</script>"
EVIL_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"

RUNBOOK = """\
# Ops

## Overview

Who owns it.

## Latency spike

Look at the database.

## Slow recovery

Look at the pools.
"""

DRILL = {
    "apiVersion": "drillctl.dev/v1",
    "kind": "Drill",
    "metadata": {"name": "html-drill", "description": "Checks & balances", "runbook": "runbooks/x.md#overview"},
    "spec": {
        "proxies": [{"name": "db", "listen": "127.0.0.1:25432", "upstream": "127.0.0.1:5432"}],
        "steady_state": {
            "interval": "100ms",
            "probes": [
                {"name": "api", "type": "tcp", "host": "127.0.0.1", "port": 25432},
                {"name": "db-port", "type": "tcp", "host": "127.0.0.1", "port": 25432},
            ],
        },
        "phases": {"baseline": "1s", "fault": "3s", "recovery": "2s"},
        "faults": [
            {"name": "db-latency", "type": "network.latency", "proxy": "db", "latency": "200ms", "duration": "1s"},
            {
                "name": "db-outage",
                "type": "network.down",
                "proxy": "db",
                "start": "1500ms",
                "duration": "1s",
                "runbook": "runbooks/x.md#slow-recovery",
            },
        ],
        "slas": [
            {
                "name": "api-recovers",
                "type": "recovery_window",
                "fault": "db-outage",
                "max": "1s",
                "stable_for": "500ms",
                "runbook": "runbooks/x.md#slow-recovery",
            },
            {
                "name": "api-latency",
                "type": "latency",
                "probe": "api",
                "phase": "fault",
                "p99": "100ms",
                "runbook": "runbooks/x.md#latency-spike",
            },
            {"name": "db-errors", "type": "error_rate", "probes": ["db-port"], "phase": "baseline", "max": 0.01},
        ],
    },
}

PHASES = (PhaseMark("baseline", 0.0, 1.0), PhaseMark("fault", 1.0, 4.0), PhaseMark("recovery", 4.0, 6.0))
FAULTS = (
    FaultMark("db-latency", "network.latency", {"proxy": "db", "latency": 0.2}, 0.0, 1.0, 1.0, 2.0),
    FaultMark("db-outage", "network.down", {"proxy": "db"}, 1.5, 2.5, 2.5, 3.5, runbook="runbooks/x.md#slow-recovery"),
)


def phase_at(at: float) -> str:
    return next((p.name for p in PHASES if p.start <= at < p.end), PHASES[-1].name)


def api_sample(k: int) -> Sample:
    """Slow while db-latency holds, failing from 2.6s to 3.5s (first refused, then timing out)."""
    at = round(k * 0.1, 9)
    if 2.6 <= at < 3.6:
        refused = at < 3.0
        return Sample("api", at, phase_at(at), False, None if refused else 0.5, 0.0, "refused" if refused else EVIL)
    return Sample("api", at, phase_at(at), True, 0.2 if 1.0 <= at < 2.0 else 0.002, 0.0)


@dataclass
class Parsed(HTMLParser):
    """Checks nesting as it goes and keeps what the assertions look at."""

    stack: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    starts: list[str] = field(default_factory=list)
    hrefs: dict[str, str] = field(default_factory=dict)
    svg_texts: list[str] = field(default_factory=list)
    charts: list[dict[str, list[float]]] = field(default_factory=list)
    tables: list[list[list[str]]] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    _href: str | None = None

    VOID = frozenset({"meta", "br", "hr", "img", "link", "input"})

    def __post_init__(self) -> None:
        super().__init__(convert_charrefs=True)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.starts.append(tag)
        a = dict(attrs)
        if tag == "svg":
            self.charts.append({"ok": [], "fail": []})
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.tables[-1][-1].append("")
        elif tag == "a":
            self._href = a.get("href")
        elif tag == "path" and a.get("class") == "fail":
            self.charts[-1]["fail"].append(1.0)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.starts.append(tag)
        if tag == "circle" and "g" in self.stack:
            self.charts[-1]["ok"].append(float(dict(attrs)["cy"] or 0))

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            return
        self.stack.pop()
        if tag == "a":
            self._href = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if "text" in self.stack:
            self.svg_texts.append(data)
        if self.stack and self.stack[-1] in ("td", "th", "span", "a", "code", "div") and "tr" in self.stack:
            self.tables[-1][-1][-1] += data
        if self._href is not None:
            self.hrefs[data] = self._href


def parse(html: str) -> Parsed:
    parsed = Parsed()
    parsed.feed(html)
    parsed.close()
    assert parsed.problems == [] and parsed.stack == [], (parsed.problems, parsed.stack)
    return parsed


@pytest.fixture
def drill(tmp_path: Path) -> LoadedDrill:
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "x.md").write_text(RUNBOOK)
    (tmp_path / "drills").mkdir()
    path = tmp_path / "drills" / "d.yaml"
    path.write_text(yaml.safe_dump(DRILL, sort_keys=False))
    return load_drill(path)


def make_report(
    drill: LoadedDrill,
    samples: tuple[Sample, ...],
    *,
    status: str = "completed",
    reason: str | None = None,
    revert_failures: tuple[str, ...] = (),
    faults: tuple[FaultMark, ...] = FAULTS,
) -> Report:
    run_dir = drill.folder.parent / "runs" / "html-drill-1"
    run_dir.mkdir(parents=True, exist_ok=True)
    started = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    facts = RunFacts(
        run_id=run_dir.name,
        run_dir=run_dir,
        started_at=started,
        finished_at=started + timedelta(seconds=7),
        status=status,
        reason=reason,
        injected=True,
        reverted=[f"html-drill-1/{f.name}" for f in faults],
        revert_failures=list(revert_failures),
        toxiproxy_url="http://127.0.0.1:8474",
        process_restarts={},
    )
    end = max((s.at for s in samples), default=0.0) + 0.1
    timeline = Timeline(0.1, ("api", "db-port"), samples, PHASES, faults, end=end)
    return build_report(drill, facts, timeline)


def small_samples() -> tuple[Sample, ...]:
    api = [api_sample(k) for k in range(60)]
    db = [Sample("db-port", round(k * 0.1, 9), phase_at(k * 0.1), True, 0.001, 0.0) for k in range(60)]
    return (*api, *db)


@pytest.fixture
def report(drill: LoadedDrill) -> Report:
    return make_report(drill, small_samples())


def test_the_page_is_well_formed_and_has_one_chart_per_probe(report: Report) -> None:
    html = render_html(report)
    page = parse(html)
    assert page.starts.count("svg") == 2 == len(report.timeline.probes)
    assert page.starts.count("table") == 4  # SLAs, faults, recovery windows, probes by phase
    assert not {"script", "link", "img", "iframe", "object"} & set(page.starts)
    assert " src=" not in html and "url(" not in html and "@import" not in html, "nothing loaded from elsewhere"
    assert "prefers-color-scheme: dark" in html and "@media print" in html


def test_sections_come_in_the_order_an_on_call_reads(report: Report) -> None:
    html = render_html(report)
    order = ["<h1>", 'id="slas"', 'id="charts"', 'id="faults"', 'id="recovery"', 'id="probes"', 'id="rollback"']
    positions = [html.index(marker) for marker in [*order, 'id="run"']]
    assert positions == sorted(positions)
    header = html.split('id="slas"')[0]
    assert '<span class="badge failed">FAIL</span>' in header and "exit code 1" in header
    assert "Failed: <code>api-latency</code>" in header


def test_charts_label_phases_faults_and_the_recovery(report: Report) -> None:
    page = parse(render_html(report))
    texts = " ".join(page.svg_texts)
    for phase in ("baseline", "fault", "recovery"):
        assert page.svg_texts.count(phase) == 2, phase  # a label in each chart
    assert texts.count("db-latency (network.latency)") == 2
    assert texts.count("db-outage (network.down)") == 2
    # api fails until 3.5s; healthy from 3.6s for 500ms: recovered 0.1s after the outage ended at 3.5s.
    assert texts.count("api-recovers: recovered 0.100s after fault_end of db-outage") == 2
    assert "1ms" in texts and "100ms" in texts and "seconds since t0" in texts


def test_failed_samples_are_drawn_in_the_failure_band(report: Report) -> None:
    page = parse(render_html(report))
    api, db = page.charts
    assert len(api["fail"]) == 10  # refused ones have no latency and are drawn all the same
    assert len(api["ok"]) == 50 and len(db["ok"]) == 60 and db["fail"] == []


def test_sla_rows_say_pass_or_fail_and_link_their_runbook_section(report: Report) -> None:
    page = parse(render_html(report))
    head, *rows = page.tables[0]
    assert head == ["SLA", "Result", "Measured", "Threshold", "Margin", "Resolution", "Runbook"]
    by_name = {row[0].split()[0]: row for row in rows}
    assert by_name["api-recovers"][1:6] == ["PASS", "0.100s", "1.000s", "0.900s", "±100ms"]
    assert by_name["api-latency"][1] == "FAIL" and by_name["api-latency"][4] == "-0.400s"
    assert by_name["api-latency"][5] == "exact"
    # 0 of 10 baseline samples failed against a 1% limit: one failure (10%) would breach it
    assert by_name["db-errors"][1:6] == ["PASS (within resolution)", "0.00%", "1.00%", "1.00%", "±10.00%"]
    assert by_name["api-recovers"][6] == "Slow recovery" and by_name["db-errors"][6] == "—"

    run_dir = report.facts.run_dir
    for heading, anchor in [("Slow recovery", "slow-recovery"), ("Latency spike", "latency-spike")]:
        href = page.hrefs[heading]
        assert href == f"../../runbooks/x.md#{anchor}"
        target, _, _ = href.partition("#")
        assert (run_dir / target).resolve() == (report.drill.file.parent.parent / "runbooks" / "x.md").resolve()
    assert page.hrefs["Overview"] == "../../runbooks/x.md#overview"


def test_fault_table_and_run_facts(report: Report) -> None:
    page = parse(render_html(report))
    faults = page.tables[1]
    assert faults[0] == ["Fault", "Type", "Parameters", "Injected at", "Reverted at", "Runbook"]
    assert faults[1][:5] == ["db-latency", "network.latency", "proxy=db, latency=0.2", "1.000s", "2.000s"]
    assert faults[2][5] == "Slow recovery"
    text = "".join(page.text)
    assert "Checks & balances" in text
    assert "100ms (the resolution of every window in this report)" in text
    assert str(report.drill.file) in text and "html-drill-1" in text


def test_text_from_the_drill_and_the_run_is_escaped(drill: LoadedDrill) -> None:
    outage = FAULTS[1]
    failed_fault = FaultMark(
        outage.name, outage.type, {"note": EVIL}, 1.5, 2.5, 2.5, None, runbook=outage.runbook, error=EVIL
    )
    report = make_report(
        drill,
        small_samples(),
        status="aborted",
        reason=f"received SIGINT & {EVIL}",
        revert_failures=(f"db-outage: {EVIL}",),
        faults=(FAULTS[0], failed_fault),
    )
    html = render_html(report)
    page = parse(html)
    assert EVIL not in html and "script" not in page.starts
    assert html.count(EVIL_ESCAPED) >= 5  # reason, fault error and parameter, revert failure, sample errors
    assert f"received SIGINT &amp; {EVIL_ESCAPED}" in html
    assert f'<li class="bad">REVERT FAILED: db-outage: {EVIL_ESCAPED}</li>' in html
    assert '<span class="badge other">ABORTED</span>' in html and "exit code 4" in html
    assert "Not judged: the run did not complete." in html


def test_downsampling_caps_points_but_keeps_every_failure_and_every_spike(drill: LoadedDrill) -> None:
    n = 12_000  # 20 minutes at 100ms
    samples = []
    for k in range(n):
        at = round(k * 0.1, 9)
        failed = k % 7 == 0
        latency = 3.0 if k == 5_001 else 0.002 + (k % 13) * 0.0005
        samples.append(Sample("api", at, phase_at(at), not failed, None if k % 14 == 0 else latency, 0.0))
    samples.append(Sample("db-port", 0.0, "baseline", True, 0.001, 0.0))
    report = make_report(drill, tuple(samples))
    page = parse(render_html(report))
    api, db = page.charts
    failures = sum(not s.ok for s in samples)
    assert len(api["fail"]) == failures
    assert 0 < len(api["ok"]) <= MAX_POINTS < n - failures
    highest = min(api["ok"])
    assert sum(y < highest + 50 for y in api["ok"]) == 1, "the one 3s spike stays, far above the rest"
    assert len(db["ok"]) == 1


@pytest.fixture
def listener() -> Iterator[int]:
    """A loopback port that accepts connections (into the backlog: a tcp probe only connects)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(128)
        yield int(s.getsockname()[1])


def test_a_run_writes_report_html_beside_report_md(tmp_path: Path, listener: int) -> None:
    document = {
        "apiVersion": "drillctl.dev/v1",
        "kind": "Drill",
        "metadata": {"name": "tiny"},
        "spec": {
            "phases": {"baseline": "500ms", "recovery": "1s"},
            "steady_state": {"probes": [{"type": "tcp", "name": "api", "host": "127.0.0.1", "port": listener}]},
        },
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(document))
    result = run("run", str(path), "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 0, result.stdout + result.stderr
    (run_dir,) = run_dirs(tmp_path / "runs")
    assert (run_dir / "report.md").is_file()
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    page = parse(html)
    assert page.starts.count("svg") == 1 and '<span class="badge passed">PASS</span>' in html
    assert page.svg_texts.count("baseline") == 1 and page.svg_texts.count("recovery") == 1


def test_a_run_stopped_before_any_sample_or_verdict_still_renders(drill: LoadedDrill) -> None:
    report = make_report(drill, (), status="baseline_failed", reason="steady state did not hold", faults=())
    html = render_html(report)
    page = parse(html)
    assert page.starts.count("svg") == 2 and page.svg_texts.count("no samples") == 2
    assert '<span class="badge other">ERROR</span>' in html and "steady state did not hold" in html
