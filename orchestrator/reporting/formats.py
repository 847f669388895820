"""How numbers and runbook links read in every human-facing report (Markdown, HTML)."""

from __future__ import annotations

import os
from pathlib import Path

from orchestrator.model.verdict import SlaVerdict
from orchestrator.runbooks import RunbookLink


def seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}s"


def sla_value(verdict: SlaVerdict, value: float | None) -> str:
    """A measured value, threshold or margin in the SLA's own unit."""
    if value is None:
        return "—"
    return f"{value:.2%}" if verdict.unit == "ratio" else seconds(value)


def runbook_href(link: RunbookLink, run_dir: Path) -> str:
    """Relative to the run directory, so the link still works when runs/ is copied with the repo."""
    return f"{os.path.relpath(link.path, run_dir)}#{link.anchor}"
