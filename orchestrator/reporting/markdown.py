"""report.md: the summary an on-call reads first. Every breach and every fault links to its runbook."""

from __future__ import annotations

from pathlib import Path

from orchestrator.model.durations import format_duration
from orchestrator.reporting.formats import runbook_href, seconds, sla_value
from orchestrator.reporting.report import Report
from orchestrator.runbooks import RunbookLink


def _link(link: RunbookLink | None, run_dir: Path) -> str:
    if link is None:
        return "—"
    return f"[{link.heading}]({runbook_href(link, run_dir)})"


def render_markdown(report: Report) -> str:
    facts, spec, timeline = report.facts, report.drill.spec, report.timeline
    run_dir = facts.run_dir
    status = report.status.upper()
    out = [
        f"# Drill `{spec.name}`: {status}",
        "",
        spec.metadata.description,
        "",
        f"- Run: `{facts.run_id}` (exit code {report.exit_code})",
        f"- Started: {facts.started_at.isoformat()}; finished: {facts.finished_at.isoformat()}",
        f"- Drill file: `{report.drill.path}`",
        f"- Sampling interval: {format_duration(timeline.interval)} (the resolution of every window below)",
    ]
    if facts.reason:
        out.append(f"- Stopped because: {facts.reason}")
    drill_book = report.runbook(spec.metadata.runbook)
    if drill_book:
        out.append(f"- Runbook: {_link(drill_book, run_dir)}")

    out += ["", "## SLAs", ""]
    if report.verdicts:
        out += ["| SLA | Result | Measured | Threshold | Margin | Runbook |", "|---|---|---|---|---|---|"]
        for v in report.verdicts:
            result = "PASS" if v.passed else "**FAIL**"
            margin = "—" if v.margin is None else sla_value(v, v.margin)
            out.append(
                f"| `{v.name}` ({v.type}) | {result} | {sla_value(v, v.measured)} | {sla_value(v, v.threshold)} "
                f"| {margin} | {_link(report.runbook(v.runbook), run_dir)} |"
            )
        out.append("")
        out += [f"- `{v.name}`: {v.detail}" for v in report.verdicts]
    else:
        out.append("Not judged: the run did not complete." if spec.spec.slas else "This drill declares no SLA.")

    out += ["", "## Fault timeline", ""]
    out += ["| Fault | Type | Parameters | Injected at | Reverted at | Runbook |", "|---|---|---|---|---|---|"]
    for f in timeline.faults:
        params = ", ".join(f"{k}={v}" for k, v in f.params.items())
        out.append(
            f"| `{f.name}` | {f.type} | {params} | {seconds(f.injected_at)} | {seconds(f.reverted_at)} "
            f"| {_link(report.runbook(f.runbook), run_dir)} |"
        )
    errors = [f for f in timeline.faults if f.error]
    out += [f"- `{f.name}`: {f.error}" for f in errors]

    out += ["", "## Recovery windows", ""]
    out += ["| Fault | Time to impact | Time to recover | Unavailability |", "|---|---|---|---|"]
    for w in report.windows:
        out.append(
            f"| `{w.fault}` | {seconds(w.time_to_impact)} | {seconds(w.time_to_recover)} "
            f"| {seconds(w.unavailability)} |"
        )

    out += ["", "## Probes by phase", ""]
    out += ["| Probe | Phase | Samples | Error rate | p50 | p90 | p99 | max |", "|---|---|---|---|---|---|---|---|"]
    for s in report.stats:
        out.append(
            f"| `{s.probe}` | {s.phase} | {s.samples} | {s.error_rate:.2%} | {seconds(s.p50)} | {seconds(s.p90)} "
            f"| {seconds(s.p99)} | {seconds(s.max)} |"
        )

    out += ["", "## Phases", ""]
    out += [f"- {p.name}: {p.start:.3f}s to {p.end:.3f}s" for p in timeline.phases]

    out += ["", "## Rollback", ""]
    if facts.revert_failures:
        out += [f"- **REVERT FAILED** {failure}" for failure in facts.revert_failures]
    out += [f"- reverted `{step}`" for step in facts.reverted]
    if not facts.reverted and not facts.revert_failures:
        out.append("Nothing was injected, so nothing needed reverting.")

    breached = [v for v in report.verdicts if not v.passed and v.runbook]
    if breached:
        out += ["", "## What to do", ""]
        for v in breached:
            link = report.runbook(v.runbook)
            assert link is not None
            out.append(f"- `{v.name}` breached: follow {_link(link, run_dir)} ({link.heading})")
    return "\n".join(out) + "\n"


def write_markdown(report: Report, path: Path) -> None:
    path.write_text(render_markdown(report), encoding="utf-8")
