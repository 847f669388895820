"""report.junit.xml: one test case per SLA, so CI systems show breaches like failing tests.

A failure's message carries the measured value, the threshold and the runbook link; its body
quotes the runbook section. ElementTree escapes text and attributes; characters XML 1.0 cannot
hold at all (control characters from a target's output) are replaced first.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from orchestrator.reporting import detection
from orchestrator.reporting.formats import resolution, runbook_href, sla_value
from orchestrator.reporting.report import Report
from orchestrator.reporting.workload import figures

_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _x(value: object) -> str:
    return _NOT_XML.sub("\ufffd", str(value))


def render_junit(report: Report) -> str:
    name = _x(f"drill.{report.drill.name}")
    run_dir = report.facts.run_dir
    suite = ET.Element(
        "testsuite",
        name=name,
        tests=str(max(1, len(report.verdicts))),
        failures=str(sum(not v.passed for v in report.verdicts)),
        errors="0" if report.status in ("passed", "failed") else "1",
        timestamp=report.facts.started_at.isoformat(),
        time=f"{(report.facts.finished_at - report.facts.started_at).total_seconds():.3f}",
    )
    properties = ET.SubElement(suite, "properties")
    for key, value in [
        ("run_id", report.facts.run_id),
        ("verdict", report.verdict.outcome),
        ("interval", f"{report.timeline.interval:g}s"),
        *((f"workload_{f.key}", f"{f.value} ({f.resolution})" if f.resolution else f.value) for f in figures(report)),
    ]:
        ET.SubElement(properties, "property", name=_x(key), value=_x(value))
    if report.status not in ("passed", "failed"):
        case = ET.SubElement(suite, "testcase", classname=name, name="run")
        ET.SubElement(case, "error", message=_x(report.facts.reason or report.status), type=_x(report.status))
    for v in report.verdicts:
        case = ET.SubElement(suite, "testcase", classname=name, name=_x(v.name))
        measured = (
            f"{v.result}: measured {sla_value(v, v.measured)} ({resolution(v)}), threshold {sla_value(v, v.threshold)}"
        )
        link = report.runbook(v.runbook)
        timelines = "".join(f"\n{detection.summary(d)}" for d in report.detection if d.alert in v.detail)
        if v.passed:
            ET.SubElement(case, "system-out").text = _x(f"{measured}; {v.detail}{timelines}")
            continue
        runbook = f"; runbook: {runbook_href(link, run_dir)} ({link.heading})" if link else ""
        failure = ET.SubElement(case, "failure", message=_x(f"{measured}{runbook}"), type=_x(v.type))
        failure.text = _x(v.detail + timelines + (f"\n\n{link.heading}\n{link.text}" if link else ""))
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def write_junit(report: Report, path: Path) -> None:
    path.write_text(render_junit(report), encoding="utf-8", errors="replace")
