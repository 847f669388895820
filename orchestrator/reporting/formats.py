"""How numbers, verdicts and runbook links read in every human-facing report (Markdown, HTML, JUnit)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # not at run time: `drillctl history` starts fast
    from orchestrator.model.verdict import RecoveryWindow, SlaVerdict
    from orchestrator.reporting.report import RunbookSection


def seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}s"


def figure(value: float | None, unit: str) -> str:
    """A value in its unit: a share (`ratio`) as a percentage, a `count` as a whole number, else seconds."""
    if value is None:
        return "—"
    if unit == "count":
        return f"{value:.0f}"
    return f"{value:.2%}" if unit == "ratio" else seconds(value)


def sla_value(verdict: SlaVerdict, value: float | None) -> str:
    """A measured value, threshold or margin in the SLA's own unit."""
    return figure(value, verdict.unit)


def resolution(verdict: SlaVerdict) -> str:
    """`±` the resolution in the SLA's unit, or `exact` (nearest-rank percentiles are observed values)."""
    if verdict.resolution is None:
        return "exact" if verdict.measured is not None else "—"
    return f"±{verdict.resolution:.2%}" if verdict.unit == "ratio" else f"±{verdict.resolution * 1000:.0f}ms"


RECOVERY_WORDS = {
    "before_revert": "before the revert",
    "after_revert": "only after the revert",
    "not_recovered": "not recovered",
    "not_impacted": "no impact",
}


def recovered(window: RecoveryWindow) -> str:
    word = RECOVERY_WORDS[window.recovery]
    return f"{word} (already failing at injection)" if window.failing_at_injection else word


def relative_href(target: Path, start: Path) -> str:
    """A link from a file in `start` to `target`, so it still works when runs/ is copied with the repo."""
    return os.path.relpath(target, start).replace(os.sep, "/")


def runbook_href(link: RunbookSection, run_dir: Path) -> str:
    return f"{relative_href(link.path, run_dir)}#{link.anchor}"
