"""The report of one run: everything the renderers need, with runbook links resolved."""

from __future__ import annotations

import platform
import socket
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from orchestrator import __version__
from orchestrator.analysis import judge as judge_slas
from orchestrator.analysis import probe_stats, recovery_windows
from orchestrator.exit_codes import EXIT_ABORTED, EXIT_PASSED, EXIT_PREFLIGHT, EXIT_SLA_FAILED
from orchestrator.loading import LoadedDrill
from orchestrator.model.timeline import Timeline
from orchestrator.model.verdict import ProbeStats, RecoveryWindow, SlaVerdict
from orchestrator.runbooks import RunbookLink

SCHEMA = "drillctl.report/v1"


@dataclass(frozen=True)
class RunFacts:
    """What the engine and the CLI know about the run beyond the timeline."""

    run_id: str
    run_dir: Path
    started_at: datetime
    finished_at: datetime
    status: str
    reason: str | None
    injected: bool
    reverted: list[str]
    revert_failures: list[str]
    toxiproxy_url: str | None
    process_restarts: dict[str, int]


@dataclass(frozen=True)
class Report:
    drill: LoadedDrill
    facts: RunFacts
    timeline: Timeline
    verdicts: list[SlaVerdict]
    windows: list[RecoveryWindow]
    stats: list[ProbeStats]

    @property
    def status(self) -> str:
        """passed/failed once the run completed; otherwise what stopped it."""
        if self.facts.status != "completed":
            return self.facts.status
        return "passed" if all(v.passed for v in self.verdicts) else "failed"

    @property
    def exit_code(self) -> int:
        status = self.status
        if status == "passed":
            return EXIT_PASSED
        if status == "failed":
            return EXIT_SLA_FAILED
        if status == "aborted" and self.facts.injected:
            return EXIT_ABORTED
        return EXIT_PREFLIGHT

    def runbook(self, ref: str | None) -> RunbookLink | None:
        return None if ref is None else self.drill.runbooks.resolve(ref)

    def environment(self) -> dict[str, Any]:
        return {
            "drillctl": __version__,
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "hostname": socket.gethostname(),
            "toxiproxy_url": self.facts.toxiproxy_url,
        }


def build_report(drill: LoadedDrill, facts: RunFacts, timeline: Timeline) -> Report:
    """SLAs are only judged on a completed run: an aborted drill proves nothing either way."""
    completed = facts.status == "completed"
    return Report(
        drill=drill,
        facts=facts,
        timeline=timeline,
        verdicts=judge_slas(drill.spec, timeline) if completed else [],
        windows=recovery_windows(drill.spec, timeline),
        stats=probe_stats(timeline),
    )
