"""What drillctl prints when a run ends and when it compares two runs: text lines and the JSON document.

cli.py only echoes these; `paint(text, colour)` is the caller's view, which colours them for a terminal.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from orchestrator.comparison import Comparison, Tolerance
from orchestrator.reporting.formats import figure, seconds, sla_value
from orchestrator.reporting.report import Report

Paint = Callable[[str, str], str]


def run_summary(report: Report, paint: Paint) -> list[str]:
    """The verdict, each SLA (with the runbook section of a failed one) and the rollback."""
    lines = [paint(f"drill {report.drill.name}: {report.status.upper()}", _colour(report.status == "passed"))]
    if report.facts.reason:
        lines.append(f"  reason: {report.facts.reason}")
    for v in report.verdicts:
        measured, limit = sla_value(v, v.measured), sla_value(v, v.threshold)
        line = f"  {paint(v.result, _colour(v.passed))} {v.name}: {measured} (limit {limit})"
        link = report.runbook(v.runbook)
        if not v.passed and link is not None:
            line += f" -> {link.ref} ({link.heading})"
        lines.append(line)
    if (w := report.timeline.workload) is not None:
        line = (
            f"  workload: {w.operations} operations, {w.lost} acknowledged writes lost (RPO {seconds(w.rpo)}), "
            f"longest write unavailability {seconds(w.write_unavailable)}"
        )
        lines.append(paint(line, _colour(w.lost == 0)) if w.verified else line + " (not read back)")
    lines += [f"  reverted {step}" for step in report.facts.reverted]
    lines += [paint(f"  REVERT FAILED {failure}", "red") for failure in report.facts.revert_failures]
    lines.append(f"report: {report.facts.run_dir / 'report.md'}")
    return lines


def _colour(good: bool) -> str:
    return "green" if good else "red"


def comparison_lines(result: Comparison, before: Report, after: Report) -> list[str]:
    """Every figure that changed or was judged, then the notes and the verdict."""
    return change_lines(result, after.drill.name, before.facts.run_id, after.facts.run_id)


def change_lines(result: Comparison, drill: str, baseline: str, new: str) -> list[str]:
    """`comparison_lines` for a baseline that is not one run (a rolling baseline from the history)."""
    lines = [f"drill {drill}: {baseline} ({result.baseline}) -> {new} ({result.new})"]
    for c in result.changes:
        if c.allowed is None and not c.regression and c.baseline == c.new:
            continue
        mark = "REGRESSION" if c.regression else "ok"
        note = f" ({c.note})" if c.note else ""
        lines.append(
            f"  {mark:<10} {c.subject} {c.metric}: {figure(c.baseline, c.unit)} -> {figure(c.new, c.unit)}{note}"
        )
    lines += [f"  note: {note}" for note in result.notes]
    lines.append("regression" if result.regressed else "no regression")
    return lines


def comparison_json(result: Comparison, before: Report, after: Report, tolerance: Tolerance) -> dict[str, Any]:
    """`drillctl compare --output json`."""
    baseline = {"run": before.facts.run_id, "verdict": result.baseline}
    return change_json(result, after.drill.name, baseline, after.facts.run_id, tolerance)


def change_json(
    result: Comparison, drill: str, baseline: dict[str, Any], new: str, tolerance: Tolerance
) -> dict[str, Any]:
    """`comparison_json` with the baseline described by the caller (a run, or runs of the history)."""
    return {
        "drill": drill,
        "baseline": baseline,
        "new": {"run": new, "verdict": result.new},
        "tolerance": dataclasses.asdict(tolerance),
        "regression": result.regressed,
        "changes": [
            {
                "subject": c.subject,
                "metric": c.metric,
                "unit": c.unit,
                "baseline": c.baseline,
                "new": c.new,
                "delta": c.delta,
                "relative": c.relative,
                "allowed": c.allowed,
                "regression": c.regression,
                "note": c.note,
            }
            for c in result.changes
        ],
        "notes": result.notes,
    }
