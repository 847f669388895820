"""report.html: the report as one self-contained page, with a latency chart per probe.

One file with inline CSS and inline SVG, no script and no external asset, so it reads the same
opened from disk, attached to a CI artifact or printed. Every text from the drill or the run is
escaped: error messages and details are free text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

from orchestrator.model.alerts import DetectionTimeline
from orchestrator.model.durations import format_duration
from orchestrator.model.timeline import FaultMark, Sample, SampleSeries, Timeline
from orchestrator.model.verdict import SlaVerdict
from orchestrator.reporting import detection
from orchestrator.reporting.formats import recovered, resolution, runbook_href, seconds, sla_value
from orchestrator.reporting.report import Report, RunbookSection
from orchestrator.reporting.workload import example, figures, title

MAX_POINTS = 2000
"""Most markers drawn per probe chart beyond its failures, which are all drawn."""

# Chart geometry, in SVG user units (the chart scales to the page width).
WIDTH = 960
LEFT, RIGHT = 64, 16
PLOT_W = WIDTH - LEFT - RIGHT
PHASE_ROW, ANNOTATION_ROW, FAIL_BAND, PLOT_H, AVAIL_GAP, AVAIL_H, AXIS_H = 18, 20, 18, 180, 8, 44, 30
AVAIL_BINS = 160
"""Availability is drawn as the share of passing samples per bin, about this many bins across."""
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; base-uri 'none'"
"""Belt and braces for `no external request`: even an injected tag could load nothing."""
CHAR_W = 6.2
"""Rough width of one character of chart text, to keep labels inside the chart."""

STYLE = """
:root { color-scheme: light dark; --bg: #fff; --fg: #1f2328; --muted: #656d76; --line: #d0d7de;
  --head: #f6f8fa; --ok: #1f6feb; --fail: #d1242f; --pass: #1a7f37; --warn: #9a6700; --link: #0969da;
  --baseline: rgba(101, 109, 118, .10); --fault: rgba(191, 135, 0, .16); --recovery: rgba(26, 127, 55, .10);
  --bar: #8250df; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #0d1117; --fg: #e6edf3; --muted: #8d96a0; --line: #30363d; --head: #161b22; --ok: #58a6ff;
    --fail: #ff7b72; --pass: #3fb950; --warn: #d29922; --link: #58a6ff; --baseline: rgba(139, 148, 158, .12);
    --fault: rgba(210, 153, 34, .18); --recovery: rgba(63, 185, 80, .12); --bar: #bc8cff; }
}
@media print {
  :root { color-scheme: light; --bg: #fff; --fg: #000; --muted: #444; --line: #bbb; --head: #f2f2f2;
    --ok: #1f6feb; --fail: #c00; --pass: #1a7f37; --warn: #9a6700; --link: #000;
    --baseline: rgba(0, 0, 0, .06); --fault: rgba(191, 135, 0, .18); --recovery: rgba(26, 127, 55, .10);
    --bar: #8250df; }
  body { margin: 0; max-width: none; }
  figure, tr { break-inside: avoid; }
  h2 { break-after: avoid; }
  a { text-decoration: none; }
  * { print-color-adjust: exact; -webkit-print-color-adjust: exact; }
}
body { background: var(--bg); color: var(--fg); max-width: 1040px; margin: 2rem auto; padding: 0 1rem;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; }
h1 { font-size: 1.6rem; margin: 0 0 .3rem; }
h2 { font-size: 1.15rem; margin: 1.8rem 0 .6rem; border-bottom: 1px solid var(--line); padding-bottom: .2rem; }
a { color: var(--link); }
code { font: 12.5px ui-monospace, SFMono-Regular, Menlo, monospace; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--line); padding: .3rem .5rem; text-align: left; vertical-align: top; }
th { background: var(--head); font-weight: 600; }
td.num, th.num { text-align: right; white-space: nowrap; }
.badge { display: inline-block; padding: .05rem .55rem; border-radius: 1rem; color: #fff; font-size: 1.1rem; }
.badge.passed, .result.pass { background: var(--pass); }
.badge.failed, .result.fail { background: var(--fail); }
.badge.other { background: var(--warn); }
.result { color: #fff; font-weight: 700; padding: .05rem .4rem; border-radius: .25rem; }
.bad, .neg { color: var(--fail); font-weight: 600; }
.muted, .detail { color: var(--muted); }
.detail { font-size: 12.5px; }
.reason { border-left: 4px solid var(--fail); padding: .4rem .7rem; background: var(--head); }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; margin: 0; }
dt { color: var(--muted); }
dd { margin: 0; }
figure { margin: 0 0 1.2rem; }
figcaption { font-size: 12.5px; color: var(--muted); margin-top: .2rem; }
figcaption b { color: var(--fg); }
svg.chart { width: 100%; height: auto; display: block; font: 11px system-ui, sans-serif; }
svg.chart text { fill: var(--fg); }
svg.chart .axis { stroke: var(--muted); stroke-width: 1; }
svg.chart .grid { stroke: var(--line); stroke-width: 1; }
svg.chart .tick, svg.chart .phase-label { fill: var(--muted); }
svg.chart .phase-baseline { fill: var(--baseline); }
svg.chart .phase-fault { fill: var(--fault); }
svg.chart .phase-recovery { fill: var(--recovery); }
svg.chart .band { fill: var(--fail); opacity: .07; }
svg.chart .ok { fill: var(--ok); }
svg.chart .fail { stroke: var(--fail); stroke-width: 1.6; fill: none; }
svg.chart .range { stroke: var(--ok); stroke-width: 1.2; fill: none; }
svg.chart .p99 { stroke: var(--warn); stroke-width: 1; fill: none; }
svg.chart text.fail-label { fill: var(--fail); }
svg.chart .fault-bar { fill: var(--bar); }
svg.chart .fault-tail { fill: var(--bar); opacity: .35; }
svg.chart .fault-edge { stroke: var(--bar); stroke-dasharray: 3 3; opacity: .6; }
svg.chart .recovered { stroke: var(--pass); stroke-width: 1.5; }
svg.chart .recovered.late { stroke: var(--fail); }
svg.chart .recovered-label { fill: var(--pass); }
svg.chart .recovered-label.late { fill: var(--fail); }
svg.chart .detect { stroke: var(--warn); stroke-width: 1.5; fill: none; }
svg.chart .detect-mark { fill: var(--warn); }
svg.chart text.detect-label { fill: var(--warn); }
svg.chart .threshold { stroke: var(--warn); stroke-width: 1.4; stroke-dasharray: 6 3; fill: none; }
svg.chart text.threshold-label { fill: var(--warn); }
svg.chart .avail-band { fill: var(--head); stroke: var(--line); }
svg.chart .avail { stroke: var(--pass); stroke-width: 1.5; fill: none; }
svg.chart .avail-fill { fill: var(--pass); opacity: .15; }
.runbook-quote { border-left: 4px solid var(--fail); margin: .8rem 0; padding: .2rem .8rem; background: var(--head); }
.runbook-quote blockquote { margin: .3rem 0; white-space: pre-wrap; font: 12.5px ui-monospace, SFMono-Regular, Menlo,
  monospace; }
.result.marginal { background: var(--warn); }
.key { display: inline-block; width: .8em; height: .8em; vertical-align: -.05em; border-radius: 50%; }
.key.ok { background: var(--ok); }
.key.fail { color: var(--fail); width: auto; height: auto; border-radius: 0; font-weight: 700; }
.key.bar { background: var(--bar); border-radius: 1px; height: .35em; width: 1.4em; vertical-align: .15em; }
"""


def _e(text: object) -> str:
    return escape(str(text))


def _link(link: RunbookSection | None, run_dir: Path) -> str:
    """Relative to the run directory, as in report.md, so the link survives copying runs/ with the repo."""
    if link is None:
        return "—"
    return f'<a href="{_e(runbook_href(link, run_dir))}" title="{_e(link.ref)}">{_e(link.heading)}</a>'


def table(head: Sequence[str], rows: Sequence[Sequence[str]], numeric: Collection[int] = ()) -> str:
    """Cells are HTML already: each caller escapes what it puts in."""

    def cls(i: int) -> str:
        return ' class="num"' if i in numeric else ""

    out = ["<table>", "<thead><tr>" + "".join(f"<th{cls(i)}>{h}</th>" for i, h in enumerate(head)) + "</tr></thead>"]
    out.append("<tbody>")
    out += ["<tr>" + "".join(f"<td{cls(i)}>{c}</td>" for i, c in enumerate(row)) + "</tr>" for row in rows]
    out.append("</tbody></table>")
    return "\n".join(out)


def page(title: str, style: str, body: Sequence[str], csp: str = CSP) -> str:
    """A self-contained page: inline style, and a CSP that lets it load nothing (`drillctl serve`'s live page
    widens it to its own nonce'd script and event stream). `title` is plain text, `body` HTML."""
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{csp}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_e(title)}</title>",
            f"<style>{style}</style>",
            "</head>",
            "<body>",
            *body,
            "</body>",
            "</html>",
        ]
    )


def render_html(report: Report) -> str:
    facts, drill = report.facts, report.drill
    body = [
        _header(report),
        _slas(report),
        _charts(report),
        _faults(report),
        _windows(report),
        _workload(report),
        _detection(report),
        _stats(report),
        _rollback(report),
        _facts(report),
    ]
    return page(f"Drill {drill.name}: {report.verdict.outcome} ({facts.run_id})", STYLE, body)


def write_html(report: Report, path: Path) -> None:
    path.write_text(render_html(report), encoding="utf-8", errors="replace")


# --- sections, in the order an on-call reads them -------------------------------------------------


def _header(report: Report) -> str:
    facts, drill = report.facts, report.drill
    verdict = report.verdict
    badge = {"PASS": "passed", "FAIL": "failed"}.get(verdict.outcome, "other")
    out = [
        "<header>",
        f'<h1>Drill <code>{_e(drill.name)}</code> <span class="badge {badge}">{_e(verdict.outcome)}</span></h1>',
        f'<p class="muted">{_e(report.status)} · exit code {report.exit_code} · run <code>{_e(facts.run_id)}</code>'
        f" · {_e(facts.started_at.isoformat())}</p>",
    ]
    if verdict.failed:
        out.append(f'<p class="bad">Failed: {", ".join(f"<code>{_e(n)}</code>" for n in verdict.failed)}</p>')
    if verdict.marginal:
        names = ", ".join(f"<code>{_e(n)}</code>" for n in verdict.marginal)
        out.append(f"<p>Within resolution (one sample could flip the verdict): {names}</p>")
    if drill.description:
        out.append(f"<p>{_e(drill.description)}</p>")
    if facts.reason:
        out.append(f'<p class="reason"><b>Stopped because:</b> {_e(facts.reason)}</p>')
    drill_book = report.runbook(drill.runbook)
    if drill_book:
        out.append(f"<p>Runbook: {_link(drill_book, facts.run_dir)}</p>")
    out.append("</header>")
    return "\n".join(out)


def _result(v: SlaVerdict) -> str:
    cls = "marginal" if v.marginal else "pass" if v.passed else "fail"
    return f'<span class="result {cls}">{_e(v.result)}</span>'


def _slas(report: Report) -> str:
    out = ['<section id="slas">', "<h2>SLAs</h2>"]
    if not report.verdicts:
        judged = (
            "Not judged: the run did not complete." if report.drill.slas_declared else "This drill declares no SLA."
        )
        out.append(f"<p>{judged}</p>")
        out.append("</section>")
        return "\n".join(out)
    rows = []
    for v in report.verdicts:
        margin = "—" if v.margin is None else sla_value(v, v.margin)
        if v.margin is not None and v.margin < 0:
            margin = f'<span class="neg">{margin}</span>'
        rows.append(
            [
                f'<code>{_e(v.name)}</code> <span class="muted">({_e(v.type)})</span>'
                f'<div class="detail">{_e(v.detail)}</div>',
                _result(v),
                sla_value(v, v.measured),
                sla_value(v, v.threshold),
                margin,
                _e(resolution(v)),
                _link(report.runbook(v.runbook), report.facts.run_dir),
            ]
        )
    head = ["SLA", "Result", "Measured", "Threshold", "Margin", "Resolution", "Runbook"]
    out.append(table(head, rows, numeric={2, 3, 4, 5}))
    for v in report.verdicts:
        link = report.runbook(v.runbook)
        if v.passed or link is None:
            continue
        out.append(
            f'<div class="runbook-quote" id="runbook-{_e(v.name)}"><p><b>{_e(v.name)} failed</b>: follow '
            f'{_link(link, report.facts.run_dir)} <span class="muted">({_e(link.ref)})</span></p>'
            f"<blockquote>{_e(link.text) or '(this section is empty)'}</blockquote></div>"
        )
    out.append("</section>")
    return "\n".join(out)


def _faults(report: Report) -> str:
    """Touched objects and revert notes get columns only when some fault has them (Kubernetes faults do)."""
    faults = report.timeline.faults
    touched, noted = any(f.touched for f in faults), any(f.revert_notes for f in faults)
    rows = []
    for f in faults:
        name = f"<code>{_e(f.name)}</code>"
        if f.error:
            name += f'<div class="bad">{_e(f.error)}</div>'
        params = ", ".join(f"{k}={v}" for k, v in f.params.items())
        ended = "" if f.ended_at is None or f.ended_at == f.reverted_at else f" (ended {seconds(f.ended_at)})"
        row = [name, _e(f.type), f"<code>{_e(params)}</code>", seconds(f.injected_at), seconds(f.reverted_at) + ended]
        if touched:
            seed = "" if f.seed is None else f'<div class="muted">seed {f.seed}</div>'
            row.append("".join(f"<div><code>{_e(t)}</code></div>" for t in f.touched) + seed)
        if noted:
            row.append("".join(f"<div>{_e(note)}</div>" for note in f.revert_notes))
        rows.append([*row, _link(report.runbook(f.runbook), report.facts.run_dir)])
    head = ["Fault", "Type", "Parameters", "Injected at", "Reverted at"]
    head += (["Touched"] if touched else []) + (["Revert notes"] if noted else []) + ["Runbook"]
    listing = table(head, rows, numeric={3, 4}) if rows else "<p>This drill injects no fault.</p>"
    return f'<section id="faults">\n<h2>Fault timeline</h2>\n{listing}\n</section>'


def _windows(report: Report) -> str:
    rows = [
        [
            f"<code>{_e(w.fault)}</code>",
            seconds(w.time_to_impact),
            _e(recovered(w)),
            seconds(w.time_to_recover),
            seconds(w.unavailability),
            seconds(w.longest_outage),
            f"±{w.resolution * 1000:.0f}ms",
        ]
        for w in report.windows
    ]
    head = ["Fault", "Time to impact", "Recovered", "Time to recover", "Unavailability", "Longest outage", "Resolution"]
    listing = table(head, rows, numeric={1, 3, 4, 5, 6}) if rows else "<p>No fault was injected.</p>"
    note = (
        '<p class="muted">Time to recover counts from the fault\'s end (its revert) to the first moment every probe '
        "passed for stable_for. Resolution: the spacing of samples around the window plus the sampler's lag.</p>"
    )
    return f'<section id="recovery">\n<h2>Recovery windows</h2>\n{listing}\n{note if rows else ""}\n</section>'


def _workload(report: Report) -> str:
    """The checker's figures beside the recovery windows; each breach links its SLA's runbook section."""
    w = report.timeline.workload
    if w is None:
        return ""
    rows = [
        [
            _e(f.label),
            f'<span class="bad">{_e(f.value)}</span>' if f.bad else _e(f.value),
            _e(f.resolution) or "—",
            _link(report.runbook(f.sla.runbook), report.facts.run_dir) if f.sla is not None else "—",
        ]
        for f in figures(report)
    ]
    listing = [table(["Figure", "Measured", "Resolution", "Runbook"], rows)]
    stats = [
        [
            _e(s.operation),
            _e(s.phase),
            str(s.operations),
            f"{s.availability:.2%}",
            str(s.failed),
            str(s.unknown),
            *(seconds(v) for v in (s.p50, s.p90, s.p99, s.p999, s.max, s.lag_p99)),
        ]
        for s in w.stats
    ]
    head = ["Operation", "Phase", "Count", "Acknowledged", "Failed", "Unknown", "p50", "p90", "p99", "p99.9", "max"]
    listing.append(table([*head, "lag p99"], stats, numeric=set(range(2, 12))))
    if w.examples:
        listing.append(f"<ul>{''.join(f'<li>{_e(example(e))}</li>' for e in w.examples)}</ul>")
    note = (
        '<p class="muted">Latency counts from each operation\'s intended start (open loop); an operation that could '
        "not start is failed. Every key written was read back after recovery: a write is lost when it was "
        "acknowledged and its key holds nothing, or only writes acknowledged before it began.</p>"
    )
    body = "\n".join(listing)
    return f'<section id="workload">\n<h2>{_e(title(w))}</h2>\n{body}\n{note}\n</section>'


def _detection(report: Report) -> str:
    """Each measured alert's timeline per fault, with its runbook link checked; the alert watcher's warnings."""
    warnings = [] if report.timeline.alerts is None else list(report.timeline.alerts.warnings)
    if not report.detection and not warnings:
        return ""
    rows = []
    for d in report.detection:
        book = detection.runbook_text(d)
        rows.append(
            [
                f"<code>{_e(d.fault)}</code>",
                f"<code>{_e(d.alert)}</code>",
                *(_e(c) for c in detection.cells(d)),
                f'<span class="bad">{_e(book)}</span>' if d.runbook_problem else _e(book),
            ]
        )
    head = ["Fault", "Alert", *detection.HEADINGS, "Runbook link"]
    listing = table(head, rows, numeric=set(range(2, 8))) if rows else ""
    notes = "".join(f'<p class="bad">warning: {_e(w)}</p>' for w in warnings)
    intro = f'<p class="muted">{_e(detection.INTRO)}</p>' if rows else ""
    return f'<section id="detection">\n<h2>Detection</h2>\n{listing}\n{intro}\n{notes}\n</section>'


def _stats(report: Report) -> str:
    rows = []
    for s in report.stats:
        rate = f"{s.availability:.2%}"
        rows.append(
            [
                f"<code>{_e(s.probe)}</code>",
                _e(s.window),
                str(s.samples),
                f'<span class="bad">{rate}</span>' if s.failures else rate,
                seconds(s.p50),
                seconds(s.p90),
                seconds(s.p99),
                seconds(s.p999),
                seconds(s.max),
                seconds(s.lag_p99),
                seconds(s.jitter),
            ]
        )
    head = ["Probe", "Window", "Samples", "Availability", "p50", "p90", "p99", "p99.9", "max", "lag p99", "jitter"]
    listing = table(head, rows, numeric=set(range(2, 11))) if rows else "<p>No sample was taken.</p>"
    note = (
        '<p class="muted">Percentiles are exact (nearest rank over every completed sample, failed ones included). '
        "Lag: how late the sampler started a sample; jitter: p99 of the change in lag from one sample to the next.</p>"
    )
    return f'<section id="probes">\n<h2>Probes by phase and fault window</h2>\n{listing}\n{note}\n</section>'


def _rollback(report: Report) -> str:
    facts = report.facts
    items = [f'<li class="bad">REVERT FAILED: {_e(failure)}</li>' for failure in facts.revert_failures]
    items += [f"<li>reverted <code>{_e(step)}</code></li>" for step in facts.reverted]
    body = (
        f"<ul>\n{chr(10).join(items)}\n</ul>" if items else "<p>Nothing was injected, so nothing needed reverting.</p>"
    )
    return f'<section id="rollback">\n<h2>Rollback</h2>\n{body}\n</section>'


def _facts(report: Report) -> str:
    facts, timeline = report.facts, report.timeline
    env = report.environment
    lasted = (facts.finished_at - facts.started_at).total_seconds()
    phases = "; ".join(f"{p.name} {p.start:.3f}s to {p.end:.3f}s" for p in timeline.phases) or "—"
    items = [
        ("Run", f"<code>{_e(facts.run_id)}</code>"),
        ("Started", _e(facts.started_at.isoformat())),
        ("Finished", f"{_e(facts.finished_at.isoformat())} ({lasted:.1f}s)"),
        ("Drill file", f"<code>{_e(report.drill.file)}</code>"),
        (
            "Sampling interval",
            f"{_e(format_duration(timeline.interval))} (the resolution of every window in this report)",
        ),
        ("Phases", _e(phases)),
        ("Seed", _e(report.drill.seed if report.drill.seed is not None else "—")),
        ("Toxiproxy", _e(facts.toxiproxy_url or "not used")),
    ]
    if facts.process_restarts:
        items.append(("Process restarts", _e(", ".join(f"{k}: {n}" for k, n in facts.process_restarts.items()))))
    items.append(
        (
            "drillctl",
            _e(f"{env.get('drillctl')} on Python {env.get('python')}, {env.get('platform')}, {env.get('hostname')}"),
        )
    )
    rows = "\n".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items)
    return f'<section id="run">\n<h2>Run</h2>\n<dl>\n{rows}\n</dl>\n</section>'


# --- charts -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Recovery:
    """Where a recovery_window SLA says the system recovered, drawn on the probes it selects."""

    sla: str
    reference: float
    at: float
    passed: bool
    probes: tuple[str, ...]
    label: str


def _recoveries(report: Report) -> list[_Recovery]:
    """From the verdicts of recovery_window SLAs: the moment measured from, and the recovery."""
    out: list[_Recovery] = []
    for v in report.verdicts:
        if v.window_from is None or v.window_to is None or v.measured is None:
            continue
        out.append(
            _Recovery(
                sla=v.name,
                reference=v.window_from,
                at=v.window_to,
                passed=v.passed,
                probes=v.probes or report.timeline.probes,
                label=f"{v.name}: recovered {v.measured:.3f}s after {v.reference} (max {v.threshold:g}s)",
            )
        )
    return out


@dataclass(frozen=True)
class _Threshold:
    """An SLA limit drawn on a chart: a latency across its phase, or a recovery deadline."""

    probes: tuple[str, ...]
    label: str
    latency: float | None = None
    start: float = 0.0
    end: float = 0.0
    deadline: float | None = None


def _thresholds(report: Report) -> list[_Threshold]:
    phases = {p.name: p for p in report.timeline.phases}
    out: list[_Threshold] = []
    for v in report.verdicts:
        if v.type == "latency" and v.phase in phases:
            phase = phases[v.phase]
            out.append(
                _Threshold(v.probes, f"{v.name} ≤ {format_duration(v.threshold)}", v.threshold, phase.start, phase.end)
            )
        elif v.window_from is not None and v.type == "recovery_window":
            deadline = v.window_from + v.threshold
            out.append(_Threshold(v.probes or report.timeline.probes, f"{v.name} deadline", deadline=deadline))
    return out


def _lanes(faults: Sequence[FaultMark], x_max: float) -> list[list[FaultMark]]:
    """Injected faults in as few rows as keep their bars and labels apart, so each stays readable."""
    lanes: list[list[FaultMark]] = []
    rights: list[float] = []
    for f in sorted((f for f in faults if f.injected_at is not None), key=lambda f: f.injected_at or 0.0):
        x0 = _x(f.injected_at or 0.0, x_max)
        lo, hi = _span(x0, _x(_fault_end(f, x_max), x_max), _fault_label(f))
        left, right = min(x0, lo), max(_x(_fault_until(f, x_max), x_max), hi)
        k = next((k for k, r in enumerate(rights) if r + 6 < left), None)
        if k is None:
            lanes.append([f])
            rights.append(right)
        else:
            lanes[k].append(f)
            rights[k] = right
    return lanes


def _fault_label(f: FaultMark) -> str:
    return f"{f.name} ({f.type})"


def _fault_end(f: FaultMark, x_max: float) -> float:
    """The end of its bar: the fault end recovery is measured from, or the chart's end if none."""
    return f.end if f.end is not None else x_max


def _fault_until(f: FaultMark, x_max: float) -> float:
    """Until it was reverted (or left in place), or to the end of the chart if never reverted."""
    ends = [t for t in (f.end, f.reverted_at) if t is not None]
    return max(ends) if ends else x_max


def _x_max(timeline: Timeline, series: SampleSeries | None) -> float:
    candidates = [timeline.end, *(p.end for p in timeline.phases)]
    if series is None:
        candidates += [s.at + timeline.interval for s in timeline.samples]
    elif series.buckets:
        candidates.append(series.until + timeline.interval)
    candidates += [t for f in timeline.faults for t in (f.injected_at, f.reverted_at, f.ended_at) if t is not None]
    return max(max(candidates, default=0.0), 1e-3)


def _nice_step(span: float, target: int = 10) -> float:
    raw = span / target
    magnitude = 10.0 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if raw <= m * magnitude * (1 + 1e-9))


@dataclass(frozen=True)
class _Frame:
    """The geometry of one chart: run time (seconds since t0) across, latency (log10) up."""

    x_max: float
    lo: int
    hi: int
    rows: int

    @property
    def band_top(self) -> float:
        return PHASE_ROW + self.rows * ANNOTATION_ROW + 4

    @property
    def plot_top(self) -> float:
        return self.band_top + FAIL_BAND + 4

    @property
    def plot_bottom(self) -> float:
        return self.plot_top + PLOT_H

    @property
    def avail_top(self) -> float:
        return self.plot_bottom + AVAIL_GAP

    @property
    def axis_y(self) -> float:
        """The time axis, under the availability strip."""
        return self.avail_top + AVAIL_H

    @property
    def height(self) -> float:
        return self.axis_y + AXIS_H

    def x(self, t: float) -> float:
        return _x(t, self.x_max)

    def y(self, latency: float) -> float:
        v = math.log10(max(latency, 10.0**self.lo))
        return self.plot_bottom - PLOT_H * (v - self.lo) / (self.hi - self.lo)

    def column(self, t: float) -> int:
        return int(self.x(t))


def _x(t: float, x_max: float) -> float:
    return LEFT + PLOT_W * min(max(t, 0.0), x_max) / x_max


def _f(v: float) -> str:
    """SVG coordinates to a tenth of a unit: enough on screen, and the file stays small."""
    return f"{v:.1f}"


def _downsample(points: Sequence[Sample], column: Callable[[float], int]) -> list[Sample]:
    """At most MAX_POINTS: past that, the lowest and highest latency of each pixel column.

    The highest keeps every spike visible; the lowest keeps the floor, so a slow spell still reads
    as a shift of the whole band and not as noise.
    """
    if len(points) <= MAX_POINTS:
        return list(points)
    extremes: dict[int, tuple[Sample, Sample]] = {}
    for s in points:
        assert s.latency is not None
        c = column(s.at)
        low, high = extremes.get(c, (s, s))
        low = s if s.latency < (low.latency or 0.0) else low
        high = s if s.latency > (high.latency or 0.0) else high
        extremes[c] = (low, high)
    kept = [s for low, high in extremes.values() for s in ((low,) if low is high else (low, high))]
    return sorted(kept, key=lambda s: s.at)


def _charts(report: Report) -> str:
    timeline = report.timeline
    thresholds = _thresholds(report)
    x_max = max([_x_max(timeline, report.series), *(t.deadline * 1.02 for t in thresholds if t.deadline is not None)])
    lanes = _lanes(timeline.faults, x_max)
    recoveries = _recoveries(report)
    figures = [_probe_chart(report, probe, x_max, lanes, recoveries, thresholds) for probe in timeline.probes]
    intro = (
        '<p class="muted">Latency of every sample (log scale) against seconds since the first sample '
        f"(monotonic clock; resolution {_e(format_duration(timeline.interval))}). Failed samples are drawn "
        "in the top band, with or without a latency; the strip below shows availability (share of passing "
        "samples) over time. Dashed lines are SLA limits. Hover a failure for its error.</p>"
    )
    return "\n".join(['<section id="charts">', "<h2>Probes over time</h2>", intro, *figures, "</section>"])


def _probe_chart(
    report: Report,
    probe: str,
    x_max: float,
    lanes: list[list[FaultMark]],
    recoveries: list[_Recovery],
    thresholds: list[_Threshold],
) -> str:
    timeline = report.timeline
    if report.series is not None:
        return _series_chart(report, report.series, probe, x_max, lanes, recoveries, thresholds)
    samples = [s for s in timeline.samples if s.probe == probe]
    failed = [s for s in samples if not s.ok]
    passed = [s for s in samples if s.ok and s.latency is not None]
    mine = [r for r in recoveries if probe in r.probes]
    limits = [t for t in thresholds if probe in t.probes]
    latencies = [max(s.latency, 1e-6) for s in passed if s.latency is not None]
    latencies += [t.latency for t in limits if t.latency is not None]
    lo = math.floor(math.log10(min(latencies))) if latencies else -3
    hi = math.ceil(math.log10(max(latencies))) if latencies else 0
    frame = _Frame(x_max=x_max, lo=lo, hi=max(hi, lo + 1), rows=len(lanes) + len(mine) + len(report.detection))
    drawn = _downsample(passed, frame.column)

    svg = _scaffold(timeline, probe, frame, lanes, mine, limits, report.detection)
    svg += _availability(samples, frame, timeline.interval)
    svg.append('<g class="ok">')
    svg += [f'<circle cx="{_f(frame.x(s.at))}" cy="{_f(frame.y(s.latency or 0.0))}" r="1.8"/>' for s in drawn]
    svg.append("</g>")
    band_y = frame.band_top + FAIL_BAND / 2
    for s in failed:
        x = frame.x(s.at)
        latency = "" if s.latency is None else f" after {s.latency:.3f}s"
        title = f"{s.at:.3f}s ({s.phase}): {s.error or 'failed'}{latency}"
        svg.append(
            f'<path class="fail" d="M{_f(x - 3)} {_f(band_y - 3)}l6 6m0-6l-6 6"><title>{_e(title)}</title></path>'
        )
    if not samples:
        svg.append(
            f'<text x="{_f(LEFT + PLOT_W / 2)}" y="{_f(frame.plot_top + PLOT_H / 2)}" '
            'text-anchor="middle" class="tick">no samples</text>'
        )
    svg.append("</svg>")

    shown = ""
    if len(drawn) < len(passed):
        shown = (
            f" Showing {len(drawn)} of {len(passed)} passing samples (lowest and highest latency per pixel"
            " column); every failure is drawn."
        )
    caption = (
        f"<figcaption><b>{_e(probe)}</b>: {len(samples)} sample{'' if len(samples) == 1 else 's'}, "
        f"{len(failed)} failed.{shown} "
        '<span class="key ok"></span> passed sample · <span class="key fail">&times;</span> failed sample · '
        '<span class="key bar"></span> fault injected · dashed: SLA limit</figcaption>'
    )
    return "\n".join(["<figure>", *svg, caption, "</figure>"])


def _scaffold(
    timeline: Timeline,
    probe: str,
    frame: _Frame,
    lanes: list[list[FaultMark]],
    mine: list[_Recovery],
    limits: list[_Threshold],
    detections: Sequence[DetectionTimeline],
) -> list[str]:
    """What every chart draws whatever its samples: phases, axes, faults, recoveries, detections and SLA limits."""
    svg = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {_f(frame.height)}" role="img" '
        f'aria-label="{_e(f"Latency of {probe} over time")}" xmlns="http://www.w3.org/2000/svg">'
    ]
    svg += _phase_bands(timeline, frame)
    svg += _axes(frame)
    svg += _fault_rows(lanes, frame)
    svg += _recovery_rows(mine, frame, first_row=len(lanes))
    svg += _detection_rows(detections, frame, first_row=len(lanes) + len(mine))
    svg += _threshold_marks(limits, frame)
    return svg


def _series_chart(
    report: Report,
    series: SampleSeries,
    probe: str,
    x_max: float,
    lanes: list[list[FaultMark]],
    recoveries: list[_Recovery],
    thresholds: list[_Threshold],
) -> str:
    """A long run's chart from its buckets: per bucket, the range of passing latencies with its p99, and a
    mark in the failure band for every bucket with at least one failed sample."""
    timeline = report.timeline
    buckets = [b for b in series.buckets if b.probe == probe]
    mine = [r for r in recoveries if probe in r.probes]
    limits = [t for t in thresholds if probe in t.probes]
    latencies = [max(v, 1e-6) for b in buckets for v in (b.min, b.max) if v is not None]
    latencies += [t.latency for t in limits if t.latency is not None]
    lo = math.floor(math.log10(min(latencies))) if latencies else -3
    hi = math.ceil(math.log10(max(latencies))) if latencies else 0
    frame = _Frame(x_max=x_max, lo=lo, hi=max(hi, lo + 1), rows=len(lanes) + len(mine) + len(report.detection))
    svg = _scaffold(timeline, probe, frame, lanes, mine, limits, report.detection)
    bins: dict[int, list[int]] = {}
    width = _avail_width(frame, timeline.interval)
    for b in buckets:
        counts = bins.setdefault(int(b.start / width), [0, 0])
        counts[0] += b.samples - b.failures
        counts[1] += b.samples
    svg += _availability_bins({k: (ok, n) for k, (ok, n) in bins.items()}, width, frame)
    drawn = [b for b in buckets if b.min is not None and b.max is not None]
    middle = [(frame.x(b.start + series.width / 2), b) for b in drawn]
    ranges = "".join(f"M{_f(x)} {_f(frame.y(b.max or 0.0))}V{_f(frame.y(b.min or 0.0))}" for x, b in middle)
    p99 = "".join(f"{'M' if k == 0 else 'L'}{_f(x)} {_f(frame.y(b.p99 or 0.0))}" for k, (x, b) in enumerate(middle))
    if drawn:
        svg.append(f'<path class="range" d="{ranges}"/>')
        svg.append(f'<path class="p99" d="{p99}"/>')
    band_y = frame.band_top + FAIL_BAND / 2
    for b in buckets:
        if not b.failures:
            continue
        x = frame.x(b.failed_at if b.failed_at is not None else b.start)
        title = (
            f"{b.failures} of {b.samples} failed in {b.start:.3f}s to {b.start + series.width:.3f}s; "
            f"first at {b.failed_at or b.start:.3f}s: {b.error or 'failed'}"
        )
        svg.append(
            f'<path class="fail" d="M{_f(x - 3)} {_f(band_y - 3)}l6 6m0-6l-6 6"><title>{_e(title)}</title></path>'
        )
    if not buckets:
        svg.append(
            f'<text x="{_f(LEFT + PLOT_W / 2)}" y="{_f(frame.plot_top + PLOT_H / 2)}" '
            'text-anchor="middle" class="tick">no samples</text>'
        )
    svg.append("</svg>")
    total, failed = sum(b.samples for b in buckets), sum(b.failures for b in buckets)
    caption = (
        f"<figcaption><b>{_e(probe)}</b>: {total} sample{'' if total == 1 else 's'}, {failed} failed. "
        f"A long run: per {_e(format_duration(series.width))} bucket, the lowest to highest latency of passing "
        "samples and their p99 (line); every bucket with a failure is marked. Every sample is in "
        f"<code>{_e(timeline.samples_file.path if timeline.samples_file else 'samples.bin')}</code>. "
        '<span class="key ok"></span> passing range · <span class="key fail">&times;</span> failed samples · '
        '<span class="key bar"></span> fault injected · dashed: SLA limit</figcaption>'
    )
    return "\n".join(["<figure>", *svg, caption, "</figure>"])


def _phase_bands(timeline: Timeline, frame: _Frame) -> list[str]:
    """Shaded bands with their names; where names would collide, the wider phase keeps its name."""
    out = []
    placed: list[tuple[float, float]] = []
    for p in sorted(timeline.phases, key=lambda p: p.start - p.end):
        x0, x1 = frame.x(p.start), frame.x(p.end)
        out.append(
            f'<rect class="phase-{_e(p.name)}" x="{_f(x0)}" y="0" width="{_f(max(x1 - x0, 0.5))}" '
            f'height="{_f(frame.axis_y)}"><title>{_e(f"{p.name}: {p.start:.3f}s to {p.end:.3f}s")}</title></rect>'
        )
        lo, hi = _span(x0 + 4, min(x1, LEFT + PLOT_W) - 4, p.name)
        if all(hi + 6 < left or lo > right + 6 for left, right in placed):
            out.append(_label(x0 + 4, min(x1, LEFT + PLOT_W) - 4, 13, p.name, "phase-label"))
            placed.append((lo, hi))
    return out


def _axes(frame: _Frame) -> list[str]:
    out = [
        f'<rect class="band" x="{LEFT}" y="{_f(frame.band_top)}" width="{PLOT_W}" height="{FAIL_BAND}"/>',
        f'<text class="fail-label" x="{LEFT - 6}" y="{_f(frame.band_top + FAIL_BAND / 2 + 4)}" '
        'text-anchor="end">failed</text>',
    ]
    for decade in range(frame.lo, frame.hi + 1):
        factors = (1, 2, 5) if frame.hi - frame.lo <= 2 and decade < frame.hi else (1,)
        for m in factors:
            latency = m * 10.0**decade
            y = frame.y(latency)
            out.append(f'<line class="grid" x1="{LEFT}" x2="{LEFT + PLOT_W}" y1="{_f(y)}" y2="{_f(y)}"/>')
            out.append(
                f'<text class="tick" x="{LEFT - 6}" y="{_f(y + 4)}" text-anchor="end">'
                f"{_e(format_duration(latency))}</text>"
            )
    step = _nice_step(frame.x_max)
    bottom = frame.axis_y
    for k in range(int(frame.x_max / step + 1e-9) + 1):
        t = round(k * step, 9)
        x = frame.x(t)
        out.append(f'<line class="axis" x1="{_f(x)}" x2="{_f(x)}" y1="{_f(bottom)}" y2="{_f(bottom + 4)}"/>')
        out.append(f'<text class="tick" x="{_f(x)}" y="{_f(bottom + 16)}" text-anchor="middle">{t:g}s</text>')
    out.append(f'<line class="axis" x1="{LEFT}" x2="{LEFT + PLOT_W}" y1="{_f(bottom)}" y2="{_f(bottom)}"/>')
    out.append(f'<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{_f(frame.plot_top)}" y2="{_f(frame.plot_bottom)}"/>')
    out.append(
        f'<text class="tick" x="{LEFT + PLOT_W}" y="{_f(bottom + 28)}" text-anchor="end">seconds since t0</text>'
    )
    return out


def _span(x_start: float, x_end: float, text: str) -> tuple[float, float]:
    """Where a label goes: from its mark on, or ending at it when it would run off the right edge."""
    width = CHAR_W * len(text)
    if x_start + width > LEFT + PLOT_W:
        return x_end - width, x_end
    return x_start, x_start + width


def _label(x_start: float, x_end: float, y: float, text: str, cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    lo, hi = _span(x_start, x_end, text)
    if lo == x_start:
        return f'<text{attr} x="{_f(lo)}" y="{_f(y)}">{_e(text)}</text>'
    return f'<text{attr} x="{_f(hi)}" y="{_f(y)}" text-anchor="end">{_e(text)}</text>'


def _fault_rows(lanes: list[list[FaultMark]], frame: _Frame) -> list[str]:
    out = []
    for row, lane in enumerate(lanes):
        top = PHASE_ROW + row * ANNOTATION_ROW
        for f in lane:
            start = f.injected_at or 0.0
            end = _fault_end(f, frame.x_max)
            x0, x1 = frame.x(start), frame.x(end)
            title = f"{f.name} ({f.type}): injected {seconds(f.injected_at)}, reverted {seconds(f.reverted_at)}"
            out.append(
                f'<rect class="fault-bar" x="{_f(x0)}" y="{_f(top + 12)}" width="{_f(max(x1 - x0, 2))}" height="6">'
                f"<title>{_e(title)}</title></rect>"
            )
            if f.reverted_at is not None and f.reverted_at > end:
                tail = frame.x(f.reverted_at) - x1
                out.append(
                    f'<rect class="fault-tail" x="{_f(x1)}" y="{_f(top + 12)}" width="{_f(tail)}" height="6">'
                    f"<title>{_e(f'{f.name}: left in place until the rollback')}</title></rect>"
                )
            for x in (x0, x1):
                out.append(
                    f'<line class="fault-edge" x1="{_f(x)}" x2="{_f(x)}" y1="{_f(frame.band_top)}" '
                    f'y2="{_f(frame.plot_bottom)}"/>'
                )
            out.append(_label(x0, x1, top + 10, _fault_label(f)))
    return out


def _recovery_rows(recoveries: list[_Recovery], frame: _Frame, first_row: int) -> list[str]:
    out = []
    for k, r in enumerate(recoveries):
        top = PHASE_ROW + (first_row + k) * ANNOTATION_ROW
        cls = "recovered" if r.passed else "recovered late"
        x0, x1 = frame.x(r.reference), frame.x(r.at)
        out.append(
            f'<path class="{cls}" d="M{_f(x0)} {_f(top + 11)}v6M{_f(x0)} {_f(top + 14)}H{_f(x1)}">'
            f"<title>{_e(r.label)}</title></path>"
        )
        out.append(
            f'<line class="{cls}" x1="{_f(x1)}" x2="{_f(x1)}" y1="{_f(top + 8)}" y2="{_f(frame.plot_bottom)}">'
            f"<title>{_e(r.label)}</title></line>"
        )
        label_cls = "recovered-label" if r.passed else "recovered-label late"
        out.append(_label(x1 + 4, x1 - 4, top + 10, r.label, label_cls))
    return out


def _detection_rows(detections: Sequence[DetectionTimeline], frame: _Frame, first_row: int) -> list[str]:
    """Per fault and alert: a line from the impact to the last step seen, a mark at each step (hover: when)."""
    out = []
    for k, d in enumerate(detections):
        top = PHASE_ROW + (first_row + k) * ANNOTATION_ROW
        impact = d.step("impact")
        seen = [
            (name, s, text)
            for name, text in zip(detection.STEPS, detection.cells(d), strict=True)
            if (s := d.step(name)) is not None and s.at is not None
        ]
        if not seen:
            continue
        xs = [frame.x(s.at or 0.0) for _, s, _ in seen]
        out.append(f'<path class="detect" d="M{_f(min(xs))} {_f(top + 14)}H{_f(max(xs))}"/>')
        for (name, step, text), x in zip(seen, xs, strict=True):
            since = "" if name == "impact" or impact is None or impact.at is None else " after the impact"
            title = f"{d.alert}: {name} {text}{since} ({step.at:.3f}s since the first sample)"
            mark = f'<circle class="detect-mark" cx="{_f(x)}" cy="{_f(top + 14)}" r="3">'
            out.append(f"{mark}<title>{_e(title)}</title></circle>")
        texts = {name: text for name, _, text in seen}
        label = f"{d.alert}: firing {texts.get('firing', 'not seen')}, notified {texts.get('notified', 'not seen')}"
        out.append(_label(min(xs), max(xs), top + 9, label, "detect-label"))
    return out


def _threshold_marks(limits: list[_Threshold], frame: _Frame) -> list[str]:
    out = []
    for t in limits:
        if t.latency is not None:
            y = frame.y(t.latency)
            x0, x1 = frame.x(t.start), frame.x(t.end)
            out.append(f'<path class="threshold" d="M{_f(x0)} {_f(y)}H{_f(x1)}"><title>{_e(t.label)}</title></path>')
            out.append(_label(x0 + 4, x1 - 4, y - 3, t.label, "threshold-label"))
        elif t.deadline is not None:
            x = frame.x(t.deadline)
            out.append(
                f'<path class="threshold" d="M{_f(x)} {_f(frame.band_top)}V{_f(frame.plot_bottom)}">'
                f"<title>{_e(t.label)}</title></path>"
            )
            out.append(_label(x + 4, x - 4, frame.plot_bottom - 4, t.label, "threshold-label"))
    return out


def _availability(samples: Sequence[Sample], frame: _Frame, interval: float) -> list[str]:
    """Share of passing samples per bin as a step line; bins without samples leave a gap."""
    width = _avail_width(frame, interval)
    bins: dict[int, list[bool]] = {}
    for s in samples:
        bins.setdefault(int(s.at / width), []).append(s.ok)
    return _availability_bins({k: (sum(v), len(v)) for k, v in bins.items()}, width, frame)


def _avail_width(frame: _Frame, interval: float) -> float:
    return max(2 * interval, frame.x_max / AVAIL_BINS)  # two intervals: regular sampling leaves no bin empty


def _availability_bins(bins: dict[int, tuple[int, int]], width: float, frame: _Frame) -> list[str]:
    """The strip from (passing, all) sample counts per bin of `width` seconds."""
    top, bottom = frame.avail_top, frame.avail_top + AVAIL_H
    out = [
        f'<rect class="avail-band" x="{LEFT}" y="{_f(top)}" width="{PLOT_W}" height="{AVAIL_H}"/>',
        f'<text class="tick" x="{LEFT - 6}" y="{_f(top + 9)}" text-anchor="end">100%</text>',
        f'<text class="tick" x="{LEFT - 6}" y="{_f(bottom)}" text-anchor="end">0%</text>',
        f'<text class="tick" x="{LEFT + 4}" y="{_f(top + 11)}">availability</text>',
    ]
    if not bins:
        return out
    path: list[str] = []
    last = None
    for k in sorted(bins):
        share = bins[k][0] / bins[k][1]
        y = bottom - (AVAIL_H - 2) * share
        x0, x1 = frame.x(k * width), frame.x((k + 1) * width)
        path.append(f"{'L' if last == k - 1 else 'M'}{_f(x0)} {_f(y)}H{_f(x1)}")
        last = k
    d = "".join(path)
    low = min(ok / n for ok, n in bins.values())
    out.append(
        f'<path class="avail" d="{d}"><title>{_e(f"availability per {width:.3g}s, lowest {low:.0%}")}</title></path>'
    )
    return out
