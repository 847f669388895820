"""report.md: a short summary fit for a pull-request comment; details fold away.

Every breach and every fault links to its runbook section. Text from the drill or the run is
put in code spans or escaped, so it cannot turn into Markdown or HTML of its own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from orchestrator.model.durations import format_duration
from orchestrator.model.timeline import FaultMark
from orchestrator.reporting import detection
from orchestrator.reporting.formats import recovered, resolution, runbook_href, seconds, sla_value
from orchestrator.reporting.report import Report, RunbookSection
from orchestrator.reporting.workload import example, figures, title

_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#|!~&])")
_BLOCK_START = re.compile(r"^(?:[=+-]|\d+[.)])")
"""What only at the start of a line makes a block: a setext underline (`=`, `-`), a list item (`-`, `+`, `1.`)."""


def text(value: object) -> str:
    """Plain text: Markdown and HTML characters backslash-escaped, newlines flattened."""
    flat = _SPECIAL.sub(r"\\\1", " ".join(str(value).split()))
    return _BLOCK_START.sub(lambda m: m[0][:-1] + "\\" + m[0][-1], flat)


def code(value: object) -> str:
    """A code span that no backtick, pipe or newline inside can break out of."""
    flat = " ".join(str(value).split()).replace("|", "\\|")
    if not flat:
        return "` `"  # an empty span would be a bare "``", which opens a span instead
    fence = "`" * (max((len(m) for m in re.findall(r"`+", flat)), default=0) + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def _link(link: RunbookSection | None, run_dir: Path) -> str:
    if link is None:
        return "—"
    return f"[{text(link.heading)}]({runbook_href(link, run_dir)})"


def _touched(faults: Sequence[FaultMark]) -> list[str]:
    """What each fault touched and what its revert found, below the fault table (Kubernetes faults say it)."""
    out = []
    for f in faults:
        if not f.touched and not f.revert_notes:
            continue
        seed = "" if f.seed is None else f" (seed {f.seed})"
        targets = ", ".join(code(t) for t in f.touched) or "—"
        out.append(f"- {code(f.name)} touched {targets}{seed}")
        out += [f"  - revert: {text(note)}" for note in f.revert_notes]
    return ["", *out] if out else []


def _workload(report: Report, run_dir: Path) -> list[str]:
    """The checker's figures beside the recovery windows, each breach linked to its SLA's runbook."""
    w = report.timeline.workload
    if w is None:
        return []
    out = ["", f"| {text(title(w))} | Measured | Resolution | Runbook |", "|---|---|---|---|"]
    for f in figures(report):
        value = f"**{text(f.value)}**" if f.bad else text(f.value)
        book = _link(report.runbook(f.sla.runbook), run_dir) if f.sla is not None else "—"
        out.append(f"| {text(f.label)} | {value} | {text(f.resolution) or '—'} | {book} |")
    return out


def _workload_details(report: Report) -> list[str]:
    w = report.timeline.workload
    if w is None:
        return []
    out = [
        "",
        "| Operation | Phase | Count | Acknowledged | Failed | Unknown | p50 | p90 | p99 | p99.9 | max | lag p99 |",
    ]
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for s in w.stats:
        out.append(
            f"| {text(s.operation)} | {text(s.phase)} | {s.operations} | {s.ok} | {s.failed} | {s.unknown} "
            f"| {seconds(s.p50)} | {seconds(s.p90)} | {seconds(s.p99)} | {seconds(s.p999)} | {seconds(s.max)} "
            f"| {seconds(s.lag_p99)} |"
        )
    out += ["", *(f"- {text(example(e))}" for e in w.examples)]
    if w.file is not None:
        out.append(f"- every operation: {code(w.file.path)} ({w.file.operations} records)")
    return out


def _detection(report: Report) -> list[str]:
    """Each measured alert's timeline per fault, its runbook link checked; and what the alert watcher warned of."""
    warnings = [] if report.timeline.alerts is None else list(report.timeline.alerts.warnings)
    if not report.detection and not warnings:
        return []
    out = ["", "### Detection", ""]
    if report.detection:
        out += [
            f"| Fault | Alert | {' | '.join(detection.HEADINGS)} | Runbook link |",
            "|---|---|" + "---|" * len(detection.HEADINGS) + "---|",
        ]
        for d in report.detection:
            steps = " | ".join(detection.cells(d))
            book = detection.runbook_text(d)
            book = f"**{text(book)}**" if d.runbook_problem else text(book)
            out.append(f"| {code(d.fault)} | {code(d.alert)} | {steps} | {book} |")
        out += ["", text(detection.INTRO)]
    out += [f"- warning: {text(w)}" for w in warnings]
    return out


def render_markdown(report: Report) -> str:
    facts, drill, timeline = report.facts, report.drill, report.timeline
    run_dir = facts.run_dir
    verdict = report.verdict
    out = [f"## Drill {code(drill.name)}: {verdict.outcome}", ""]
    if verdict.failed:
        out.append(f"Failed: {', '.join(code(n) for n in verdict.failed)}.")
    if verdict.marginal:
        out.append(f"Within resolution (could flip): {', '.join(code(n) for n in verdict.marginal)}.")
    if facts.reason:
        out.append(f"Stopped because: {text(facts.reason)}")
    if facts.revert_failures:
        out += [f"- **REVERT FAILED** {text(failure)}" for failure in facts.revert_failures]
    out.append(
        f"Run {code(facts.run_id)}, exit code {report.exit_code}; sampling every "
        f"{format_duration(timeline.interval)} (monotonic clock, exact nearest-rank percentiles)."
    )

    out += [
        "",
        "| SLA | Result | Measured | Threshold | Margin | Resolution | Runbook |",
        "|---|---|---|---|---|---|---|",
    ]
    for v in report.verdicts:
        result = v.result if v.passed else f"**{v.result}**"
        margin = "—" if v.margin is None else sla_value(v, v.margin)
        out.append(
            f"| {code(v.name)} | {result} | {sla_value(v, v.measured)} | {sla_value(v, v.threshold)} | {margin} "
            f"| {resolution(v)} | {_link(report.runbook(v.runbook), run_dir)} |"
        )
    if not report.verdicts:
        out.append(
            f"| — | {'not judged: the run did not complete' if drill.slas_declared else 'no SLA declared'} | | | | | |"
        )

    if timeline.faults:
        out += [
            "",
            "| Fault | Impact after | Recovered | After fault end | Unavailable | Longest outage | Runbook |",
            "|---|---|---|---|---|---|---|",
        ]
        windows = {w.fault: w for w in report.windows}
        for f in timeline.faults:
            w = windows.get(f.name)
            if w is None:
                cells = ["not injected" + (f": {text(f.error)}" if f.error else ""), "", "", "", ""]
            else:
                cells = [seconds(w.time_to_impact), recovered(w), seconds(w.time_to_recover)]
                cells += [seconds(w.unavailability), seconds(w.longest_outage)]
            book = _link(report.runbook(f.runbook), run_dir)
            out.append(f"| {code(f.name)} ({text(f.type)}) | {' | '.join(cells)} | {book} |")
        out += _touched(timeline.faults)

    out += _workload(report, run_dir)
    out += _detection(report)

    breached = [v for v in report.verdicts if not v.passed and report.runbook(v.runbook)]
    if breached:
        out += ["", "### What to do", ""]
        for v in breached:
            link = report.runbook(v.runbook)
            assert link is not None
            out.append(f"- {code(v.name)}: {_link(link, run_dir)}")
            out += [f"  > {text(line)}" if line.strip() else "  >" for line in link.text.splitlines()[:8]]

    summary = "Probes per phase and fault window" + (", workload operations" if report.timeline.workload else "")
    out += ["", f"<details><summary>{summary}</summary>", ""]
    out += [
        "| Probe | Window | Samples | Availability | p50 | p90 | p99 | p99.9 | max | sampler lag p99 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in report.stats:
        out.append(
            f"| {code(s.probe)} | {text(s.window)} | {s.samples} | {s.availability:.2%} | {seconds(s.p50)} "
            f"| {seconds(s.p90)} | {seconds(s.p99)} | {seconds(s.p999)} | {seconds(s.max)} | {seconds(s.lag_p99)} |"
        )
    out += _workload_details(report)
    rolled = [f"- reverted {code(step)}" for step in facts.reverted]
    out += ["", *rolled, "", "</details>"]
    return "\n".join(out) + "\n"


def write_markdown(report: Report, path: Path) -> None:
    path.write_text(render_markdown(report), encoding="utf-8", errors="replace")
