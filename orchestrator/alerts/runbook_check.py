"""Does the alert that fired send the on-call to the page the drill proves?

The `runbook_url` annotation of the alert is read for a `runbooks/<file>.md#<section>` path
anywhere in it (a relative link, or a code host's URL of the same file), which must resolve in
the drill's runbooks and be the drill's own runbook section for the fault. Every other case is a
flag in the report, with what was found and what was expected.
"""

from __future__ import annotations

import re
from dataclasses import replace

from orchestrator.model.alerts import DetectionTimeline
from orchestrator.runbooks import RunbookIndex

_IN_URL = re.compile(r"(runbooks/[A-Za-z0-9_./-]+\.md)#([A-Za-z0-9_-]+)")


def runbook_ref(url: str) -> str | None:
    """The last `runbooks/<file>.md#<section>` in a URL, as drills write runbook links."""
    found = _IN_URL.findall(url)
    return f"{found[-1][0]}#{found[-1][1]}" if found else None


def problem(detection: DetectionTimeline, runbooks: RunbookIndex) -> str | None:
    """Why the fired alert's runbook link does not land on the drill's runbook for the fault (None: it does)."""
    step = detection.step("firing")
    if step is None or step.at is None:
        return None
    url = detection.runbook_url
    if not url:
        return f"{detection.alert} fired without a runbook_url annotation"
    ref = runbook_ref(url)
    if ref is None:
        return f"runbook_url {url!r} points at no runbooks/<file>.md#<section>"
    if (why := runbooks.problem(ref)) is not None:
        return f"runbook_url {url!r}: {why}"
    if detection.fault_runbook is None:
        return f"fault {detection.fault} names no runbook in the drill to check {ref} against"
    if ref != detection.fault_runbook:
        expected = detection.fault_runbook
        return f"runbook_url points at {ref}, but the drill's runbook for fault {detection.fault} is {expected}"
    return None


def checked(detection: DetectionTimeline, runbooks: RunbookIndex) -> DetectionTimeline:
    return replace(detection, runbook_problem=problem(detection, runbooks))
