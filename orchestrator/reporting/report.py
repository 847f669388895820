"""The report of one run: everything the renderers need, as plain data.

A Report holds no drill spec and no open file: runbook sections are quoted when it is built, so
`drillctl report` can rebuild it from report.json alone and render it again, anywhere.
"""

from __future__ import annotations

import platform
import re
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from orchestrator import __version__
from orchestrator.alert_analysis import detection_timelines
from orchestrator.alerts.runbook_check import checked
from orchestrator.analysis import drill_verdict, fault_moments, probe_stats, recovery_windows
from orchestrator.analysis import judge as judge_slas
from orchestrator.exit_codes import EXIT_ABORTED, EXIT_PASSED, EXIT_PREFLIGHT, EXIT_SLA_FAILED
from orchestrator.loading import LoadedDrill
from orchestrator.model.alerts import DetectionTimeline
from orchestrator.model.timeline import SampleSeries, Timeline
from orchestrator.model.verdict import DrillVerdict, ProbeStats, RecoveryWindow, SlaVerdict
from orchestrator.reporting.series import is_long, summarize
from orchestrator.runbooks import RunbookLink, slugify
from orchestrator.stop_conditions import Stop

SCHEMA = "drillctl.report/v1"
MAX_QUOTE = 4000
"""Most characters of a runbook section quoted in a report: enough for a procedure, not a manual."""

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)(?:\s+#+)?\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


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
    stopped_by: Stop | None = None
    """What stopped the run early (a stop condition, `drillctl abort`, a signal), with its evidence."""


@dataclass(frozen=True)
class DrillInfo:
    """What the reports say about the drill itself."""

    name: str
    file: Path
    description: str
    runbook: str | None
    seed: int | None
    slas_declared: int


@dataclass(frozen=True)
class RunbookSection:
    """A runbook link with the section's text, as it read when the report was written."""

    ref: str
    path: Path
    anchor: str
    heading: str
    text: str


@dataclass(frozen=True)
class Report:
    drill: DrillInfo
    facts: RunFacts
    timeline: Timeline
    verdicts: list[SlaVerdict]
    windows: list[RecoveryWindow]
    stats: list[ProbeStats]
    runbooks: Mapping[str, RunbookSection]
    environment: Mapping[str, Any]
    series: SampleSeries | None = None
    """A long run's samples downsampled (`series.py`): what report.json and the charts use instead of
    every sample. None for a short run."""
    detection: Sequence[DetectionTimeline] = ()
    """Per fault and measured alert: impact, pending, firing, notified, recovered, resolved, and whether the
    alert's runbook link lands on the drill's runbook for the fault."""

    @property
    def status(self) -> str:
        """passed/failed once the run completed; otherwise what stopped it."""
        if self.facts.status != "completed":
            return self.facts.status
        return "passed" if all(v.passed for v in self.verdicts) else "failed"

    @property
    def verdict(self) -> DrillVerdict:
        return drill_verdict(self.facts.status, self.verdicts)

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

    def runbook(self, ref: str | None) -> RunbookSection | None:
        return None if ref is None else self.runbooks.get(ref)


def environment() -> dict[str, Any]:
    return {
        "drillctl": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
    }


def section_text(markdown: str, anchor: str) -> str:
    """The body under the heading with `anchor` (GitHub slugs, -1/-2 for repeats), up to the next
    heading of the same or a higher level. Empty if there is no such heading."""
    seen: set[str] = set()
    in_fence = False
    level = 0
    body: list[str] = []
    for line in markdown.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        match = None if in_fence or _FENCE.match(line) else _HEADING.match(line)
        if match is not None:
            if level and len(match.group(1)) <= level:
                break
            slug = base = slugify(match.group(2))
            n = 0
            while slug in seen:
                n += 1
                slug = f"{base}-{n}"
            seen.add(slug)
            if not level and slug == anchor:
                level = len(match.group(1))
                continue
        if level:
            body.append(line)
    text = "\n".join(body).strip()
    return text if len(text) <= MAX_QUOTE else text[:MAX_QUOTE].rstrip() + " …"


def quote(link: RunbookLink) -> RunbookSection:
    try:
        text = section_text(link.path.read_text(encoding="utf-8", errors="replace"), link.anchor)
    except OSError as e:  # resolved at load time; gone since: the report says so instead of failing
        text = f"(could not read {link.path}: {e.strerror})"
    return RunbookSection(ref=link.ref, path=link.path, anchor=link.anchor, heading=link.heading, text=text)


def build_report(
    drill: LoadedDrill, facts: RunFacts, timeline: Timeline, labels: Mapping[str, str] | None = None
) -> Report:
    """SLAs are only judged on a completed run: an aborted drill proves nothing either way. `labels` (`drillctl
    run --label`) go into `environment.labels`, where the history reads them again."""
    spec = drill.spec
    completed = facts.status == "completed"
    refs = [spec.metadata.runbook, *(f.runbook for f in spec.spec.faults), *(s.runbook for s in spec.spec.slas)]
    refs += [f.runbook for f in timeline.faults]
    runbooks = {ref: quote(drill.runbooks.resolve(ref)) for ref in dict.fromkeys(refs) if ref is not None}
    return Report(
        drill=DrillInfo(
            name=spec.name,
            file=drill.path,
            description=spec.metadata.description,
            runbook=spec.metadata.runbook,
            seed=spec.spec.seed,
            slas_declared=len(spec.spec.slas),
        ),
        facts=facts,
        timeline=timeline,
        verdicts=judge_slas(spec, timeline) if completed else [],
        windows=recovery_windows(spec, timeline),
        stats=probe_stats(timeline),
        runbooks=runbooks,
        environment={
            **environment(),
            "toxiproxy_url": facts.toxiproxy_url,
            **({"labels": dict(labels)} if labels else {}),
        },
        series=summarize(timeline) if is_long(timeline) else None,
        detection=_detection(drill, timeline),
    )


def _detection(drill: LoadedDrill, timeline: Timeline) -> list[DetectionTimeline]:
    """Each measured alert's timeline per fault, its runbook link checked against the drill's runbooks."""
    if timeline.alerts is None:
        return []
    moments = fault_moments(drill.spec, timeline)
    return [checked(d, drill.runbooks) for d in detection_timelines(drill.spec, timeline, moments)]
