"""The workload's figures as every report shows them: one list of rows (label, value, resolution, the SLA
that judged it), so report.md, report.html and the terminal say the same things in the same order."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.model.findings import Example, WorkloadResult
from orchestrator.model.verdict import SlaVerdict
from orchestrator.reporting.formats import seconds
from orchestrator.reporting.report import Report


@dataclass(frozen=True)
class Figure:
    key: str
    """A short name: junit.xml's property `workload_<key>`."""
    label: str
    value: str
    resolution: str
    bad: bool
    """A finding that is not zero: the system did something wrong (or a window, for the reader to weigh)."""
    sla: SlaVerdict | None = None
    """The failed SLA that judged this figure, whose runbook the row links."""


def _ms(value: float | None) -> str:
    return "—" if value is None else f"±{value * 1000:.0f}ms"


def _span(start: float | None, end: float | None) -> str:
    return "" if start is None or end is None else f" (from {start:.3f}s to {end:.3f}s)"


def example(e: Example) -> str:
    return f"{e.finding}: key {e.key}, value {e.value}, meant to start at {e.at:.6f}s: {e.detail}"


def title(w: WorkloadResult) -> str:
    return f"Workload: {w.client} client, {w.rate:g} operations/s"


def figures(report: Report) -> list[Figure]:
    w = report.timeline.workload
    if w is None:
        return []
    failed = {v.type: v for v in report.verdicts if not v.passed}
    exact = "exact" if w.verified else "—"
    checked = f"{w.keys_verified} of {w.keys_written} keys read back" + (
        f", {w.keys_unverified} could not be" if w.keys_unverified else ""
    )
    if not w.verified:
        checked = "not read back: the run did not finish its recovery phase"
    rows = [
        Figure(
            "operations",
            "Operations",
            f"{w.operations} ({w.reads} reads, {w.writes} writes, {w.acknowledged} acknowledged)",
            "",
            False,
        ),
        Figure("read_back", "Read-back", checked, "", w.keys_unverified > 0 or not w.verified),
        Figure("lost", "Acknowledged writes lost", str(w.lost), exact, w.lost > 0, failed.get("data_loss")),
        Figure(
            "rpo",
            "RPO (span of lost writes)",
            seconds(w.rpo) + _span(w.rpo_from, w.rpo_to),
            _ms(w.rpo_resolution),
            w.lost > 0,
            failed.get("rpo"),
        ),
        Figure(
            "write_unavailable",
            "Longest write unavailability",
            seconds(w.write_unavailable)
            + _span(w.write_unavailable_from, w.write_unavailable_to)
            + f"; {seconds(w.write_unavailable_total)} in all",
            _ms(w.write_unavailable_resolution),
            False,
        ),
        Figure("failed_present", "Reported failed, present anyway", str(w.failed_present), exact, w.failed_present > 0),
        Figure("unknown_present", "Outcome unknown, present", str(w.unknown_present), exact, False),
        Figure("duplicates", "Duplicates", str(w.duplicates), exact, w.duplicates > 0),
        Figure("stale_reads", "Stale reads", str(w.stale_reads), "exact", w.stale_reads > 0),
        Figure("foreign", "Values never written", str(w.foreign), "exact", w.foreign > 0),
    ]
    for v in report.verdicts:
        if v.type == "workload_latency" and not v.passed:
            rows.append(Figure(f"latency_{v.name}", f"Latency in {v.phase}", f"{v.name}: {v.detail}", "exact", True, v))
    return rows
