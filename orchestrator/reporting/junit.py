"""report.junit.xml: one test case per SLA, so CI systems show breaches like failing tests."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from orchestrator.reporting.report import Report


def render_junit(report: Report) -> str:
    spec = report.drill.spec
    suite = ET.Element(
        "testsuite",
        name=f"drill.{spec.name}",
        tests=str(max(1, len(report.verdicts))),
        failures=str(sum(not v.passed for v in report.verdicts)),
        errors="0" if report.status in ("passed", "failed") else "1",
        timestamp=report.facts.started_at.isoformat(),
    )
    if report.status not in ("passed", "failed"):
        case = ET.SubElement(suite, "testcase", classname=f"drill.{spec.name}", name="run")
        ET.SubElement(case, "error", message=report.facts.reason or report.status, type=report.status)
    for v in report.verdicts:
        case = ET.SubElement(suite, "testcase", classname=f"drill.{spec.name}", name=v.name)
        if not v.passed:
            link = report.runbook(v.runbook)
            runbook = f"; runbook: {link.ref} ({link.heading})" if link else ""
            ET.SubElement(case, "failure", message=f"{v.detail}{runbook}", type=v.type)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def write_junit(report: Report, path: Path) -> None:
    path.write_text(render_junit(report), encoding="utf-8")
