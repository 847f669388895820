"""The game-day report: what each drill concluded, as data, and its renderings.

`gameday.json` (also the webhook's body), `index.md`, `index.html` (self-contained, links to
each drill's own report.html) and `junit.xml` (one testsuite per drill, so CI shows a game day
as one test run). Rendering is pure: a GameDayResult in, text out. The index (gameday.json,
index.md, index.html) is written when the game day starts and again after each drill, every file
replaced whole, so whoever watches sees it progress and a killed game day leaves what ran;
junit.xml once it ends.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from orchestrator.exit_codes import EXIT_PASSED, EXIT_PREFLIGHT
from orchestrator.files import replace_file
from orchestrator.reporting.formats import relative_href, seconds
from orchestrator.reporting.html import page, table
from orchestrator.reporting.markdown import code
from orchestrator.reporting.markdown import text as md_text

if TYPE_CHECKING:  # not at run time: `history import` reads game days without aiohttp
    from orchestrator.gameday.webhook import WebhookOutcome

SCHEMA = "drillctl.gameday/v1"
GAMEDAY_FILE = "gameday.json"
DrillStatus = str
"""The drill report's own status (passed, failed, aborted, baseline_failed, ...), else `preflight` or
`error` when it could not run, or `skipped` when the game day stopped before it; while the game day
runs, `running` (the drill under way) or `pending` (not started yet)."""
GameDayStatus = Literal["passed", "failed", "stopped", "running"]


@dataclass(frozen=True)
class RecoveryFigure:
    fault: str
    time_to_impact: float | None
    time_to_recover: float | None
    unavailability: float


@dataclass(frozen=True)
class DrillResult:
    name: str
    file: Path
    status: DrillStatus
    exit_code: int
    run_dir: Path | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    reason: str | None = None
    slas_passed: int = 0
    slas_failed: list[str] = field(default_factory=list)
    recovery: list[RecoveryFigure] = field(default_factory=list)
    junit: str | None = None
    """The drill's own report.junit.xml text, merged into the game day's."""

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class GameDayResult:
    name: str
    file: Path
    report_dir: Path
    started_at: datetime
    finished_at: datetime | None
    """None while the game day runs (an index written on the way)."""
    drills: list[DrillResult]
    stop_reason: str | None
    """Why drills were left unrun: the stop policy, the window closing, the lease lost, a signal."""
    policy_stop: bool
    forced: bool
    lease: dict[str, Any] | None
    webhook: WebhookOutcome | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    """`--label key=value`: the game day's, which each of its drills' runs is recorded with too."""
    live_url: str | None = None
    """The `drillctl serve` watching the runs folder when the game day ended (its serve.json), for the index."""

    @property
    def status(self) -> GameDayStatus:
        if self.finished_at is None:
            return "running"
        if any(d.status == "skipped" for d in self.drills) and not self.policy_stop:
            return "stopped"
        return "passed" if all(d.status == "passed" for d in self.drills) else "failed"

    @property
    def exit_code(self) -> int:
        """The most severe drill's code (4 aborted > 3 preflight > 1 SLA failed); 3 if stopped with all passed."""
        worst = max((d.exit_code for d in self.drills), default=EXIT_PASSED)
        if self.status == "stopped" and worst == EXIT_PASSED:
            return EXIT_PREFLIGHT
        return worst


def with_webhook(result: GameDayResult, outcome: WebhookOutcome | None) -> GameDayResult:
    return replace(result, webhook=outcome)


def to_json(result: GameDayResult) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "gameday": result.name,
        "file": str(result.file),
        "status": result.status,
        "exit_code": result.exit_code,
        "stop_reason": result.stop_reason,
        "forced": result.forced,
        "started_at": result.started_at.isoformat(),
        "finished_at": None if result.finished_at is None else result.finished_at.isoformat(),
        "report_dir": str(result.report_dir),
        "lease": result.lease,
        "labels": dict(result.labels),
        "summary": dict(Counter(d.status for d in result.drills)),
        "drills": [
            {
                "name": d.name,
                "file": str(d.file),
                "status": d.status,
                "exit_code": d.exit_code,
                "reason": d.reason,
                "seconds": d.seconds,
                "run_dir": None if d.run_dir is None else str(d.run_dir),
                "report": None if d.run_dir is None else str(d.run_dir / "report.html"),
                "slas_passed": d.slas_passed,
                "slas_failed": d.slas_failed,
                "recovery": [r.__dict__ for r in d.recovery],
            }
            for d in result.drills
        ],
        "webhook": None if result.webhook is None else result.webhook.to_json(),
    }


def _facts(result: GameDayResult) -> list[str]:
    """What the game day itself did, as plain text, for both the Markdown and the HTML index."""
    started = result.started_at.isoformat(timespec="seconds")
    if result.finished_at is None:
        facts = [f"started {started}, running: this page is written again after each drill"]
    else:
        facts = [f"started {started}, finished {result.finished_at.isoformat(timespec='seconds')}"]
    if result.stop_reason:
        facts.append(f"stopped early: {result.stop_reason}")
    if result.forced:
        facts.append("started outside its allowed window (--force)")
    if result.lease:
        facts.append(f"lease {result.lease['namespace']}/{result.lease['name']} held as {result.lease['identity']}")
    if result.webhook:
        hook = "delivered" if result.webhook.delivered else f"NOT delivered ({result.webhook.error})"
        facts.append(f"webhook {result.webhook.url}: {hook}")
    return facts


def render_markdown(result: GameDayResult) -> str:
    """Names in code spans, reasons and figures escaped: a `|`, a backtick or HTML in a drill's name or a
    reason cannot break the table or become markup (the drill report's own `code` and `text`)."""
    lines = [f"# Game day {code(result.name)}: {result.status.upper()}", "", f"- file: {code(result.file)}"]
    lines += [f"- {md_text(fact)}" for fact in _facts(result)]
    lines += ["", "| # | drill | verdict | SLAs | recovery | time | report |", "|---|---|---|---|---|---|---|"]
    for i, d in enumerate(result.drills, 1):
        report = f"[report]({relative_href(d.run_dir / 'report.md', result.report_dir)})" if d.run_dir else "—"
        verdict = d.status.upper() + (f": {md_text(d.reason)}" if d.reason else "")
        cells = [str(i), code(d.name), verdict, _slas(d, code), _recovery(d), seconds(d.seconds), report]
        lines.append(f"| {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def _slas(d: DrillResult, name: Callable[[str], str] = str) -> str:
    """`name` renders an SLA's name for the format (a code span in Markdown)."""
    total = d.slas_passed + len(d.slas_failed)
    if not total:
        return "—"
    failed = f" (failed: {', '.join(name(s) for s in d.slas_failed)})" if d.slas_failed else ""
    return f"{d.slas_passed}/{total} passed{failed}"


def _recovery(d: DrillResult) -> str:
    parts = [
        f"{code(r.fault)}: recovered in {seconds(r.time_to_recover)}"
        for r in d.recovery
        if r.time_to_recover is not None
    ]
    return "; ".join(parts) or "—"


_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; max-width: 1040px; margin: 2rem auto; padding: 0 1rem; }
table { border-collapse: collapse; width: 100%; } th, td { border: 1px solid #d0d7de; padding: .3rem .5rem;
text-align: left; vertical-align: top; } th { background: #f6f8fa; }
.passed { color: #1a7f37; font-weight: 600; } .skipped, .pending { color: #656d76; }
.running { color: #9a6700; font-weight: 600; } .failed, .aborted, .preflight,
.error, .baseline_failed, .stopped { color: #d1242f; font-weight: 600; }
"""


def render_html(result: GameDayResult) -> str:
    """The drill report's page shell (no script, nothing loaded), with a row per drill linking to its report."""
    rows = []
    for i, d in enumerate(result.drills, 1):
        link = "—"
        if d.run_dir is not None:
            link = f'<a href="{escape(relative_href(d.run_dir / "report.html", result.report_dir))}">report</a>'
        reason = f"<br>{escape(d.reason)}" if d.reason else ""
        rows.append(
            [
                str(i),
                f"{escape(d.name)}<br><small>{escape(str(d.file))}</small>",
                f'<span class="{d.status}">{d.status.upper()}</span>{reason}',
                escape(_slas(d)),
                _recovery_html(d),
                seconds(d.seconds),
                link,
            ]
        )
    head = ["#", "drill", "verdict", "SLAs", "recovery (time to impact, to recover, unavailability)", "time", "report"]
    body = [
        f'<h1>Game day {escape(result.name)}: <span class="{result.status}">{result.status.upper()}</span></h1>',
        f"<p>{' · '.join(escape(fact) for fact in _facts(result))}</p>",
        table(head, rows),
    ]
    if result.live_url:
        body.insert(2, f'<p>Live: <a href="{escape(result.live_url)}">runs, trends and running drills</a></p>')
    return page(f"Game day {result.name}: {result.status}", _STYLE, body) + "\n"


def _recovery_html(d: DrillResult) -> str:
    if not d.recovery:
        return "—"
    return "<br>".join(
        f"{escape(r.fault)}: {seconds(r.time_to_impact)}, {seconds(r.time_to_recover)}, {seconds(r.unavailability)}"
        for r in d.recovery
    )


def render_junit(result: GameDayResult) -> str:
    """One testsuite per drill: the drill's own suite when it produced one, else a single case saying why not."""
    root = ET.Element("testsuites", name=f"gameday.{result.name}")
    for d in result.drills:
        if d.junit is not None:
            root.append(ET.fromstring(d.junit.encode()))
            continue
        suite = ET.SubElement(
            root,
            "testsuite",
            name=f"drill.{d.name}",
            tests="1",
            failures="0",
            errors="0" if d.status == "skipped" else "1",
            skipped="1" if d.status == "skipped" else "0",
        )
        case = ET.SubElement(suite, "testcase", classname=f"drill.{d.name}", name="run")
        if d.status == "skipped":
            ET.SubElement(case, "skipped", message=d.reason or "not run")
        else:
            ET.SubElement(case, "error", message=d.reason or d.status, type=d.status)
    root.set("tests", str(sum(int(s.get("tests", "0")) for s in root)))
    root.set("failures", str(sum(int(s.get("failures", "0")) for s in root)))
    root.set("errors", str(sum(int(s.get("errors", "0")) for s in root)))
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write_all(result: GameDayResult) -> None:
    """The index as it stands (each file replaced whole); junit.xml too once the game day ended."""
    folder = result.report_dir
    replace_file(folder / GAMEDAY_FILE, json.dumps(to_json(result), indent=1) + "\n")
    replace_file(folder / "index.md", render_markdown(result))
    replace_file(folder / "index.html", render_html(result))
    if result.finished_at is not None:
        replace_file(folder / "junit.xml", render_junit(result))


def summary_lines(result: GameDayResult, paint: Callable[[str, str], str]) -> list[str]:
    """What `drillctl gameday run` prints at the end; `paint(text, colour)` colours it for a terminal."""
    lines = [paint(f"game day {result.name}: {result.status.upper()}", "green" if result.status == "passed" else "red")]
    if result.stop_reason:
        lines.append(f"  stopped early: {result.stop_reason}")
    for d in result.drills:
        mark = paint(d.status.upper(), "green" if d.status == "passed" else "red")
        reason = f" ({d.reason})" if d.reason and d.status != "skipped" else ""
        lines.append(f"  {mark} {d.name}{reason}")
    if result.webhook is not None and not result.webhook.delivered:
        lines.append(paint(f"  webhook not delivered: {result.webhook.error}", "red"))
    lines.append(f"report: {result.report_dir / 'index.html'}")
    return lines
