"""report.json: the machine-readable record of a run, versioned by its `schema` field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from orchestrator.reporting.report import SCHEMA, Report
from orchestrator.runbooks import RunbookLink

SAMPLE_COLUMNS = ["probe", "at", "phase", "ok", "latency", "lag", "error"]


def _link(link: RunbookLink | None) -> dict[str, str] | None:
    if link is None:
        return None
    return {"ref": link.ref, "heading": link.heading, "path": str(link.path)}


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def to_json(report: Report) -> dict[str, Any]:
    facts, spec, timeline = report.facts, report.drill.spec, report.timeline
    return {
        "schema": SCHEMA,
        "drill": {
            "name": spec.name,
            "file": str(report.drill.path),
            "description": spec.metadata.description,
            "runbook": _link(report.runbook(spec.metadata.runbook)),
        },
        "run": {
            "id": facts.run_id,
            "status": report.status,
            "reason": facts.reason,
            "exit_code": report.exit_code,
            "seed": spec.spec.seed,
            "started_at": facts.started_at.isoformat(),
            "finished_at": facts.finished_at.isoformat(),
            "interval": timeline.interval,
            "clock": "monotonic seconds since the first sample was scheduled",
        },
        "environment": report.environment(),
        "phases": [{"name": p.name, "start": _r(p.start), "end": _r(p.end)} for p in timeline.phases],
        "faults": [
            {
                "name": f.name,
                "type": f.type,
                "params": dict(f.params),
                "injected_at": _r(f.injected_at),
                "reverted_at": _r(f.reverted_at),
                "error": f.error,
                "runbook": _link(report.runbook(f.runbook)),
            }
            for f in timeline.faults
        ],
        "slas": [
            {
                "name": v.name,
                "type": v.type,
                "passed": v.passed,
                "measured": _r(v.measured),
                "threshold": v.threshold,
                "margin": _r(v.margin),
                "unit": v.unit,
                "detail": v.detail,
                "runbook": _link(report.runbook(v.runbook)),
            }
            for v in report.verdicts
        ],
        "recovery_windows": [
            {
                "fault": w.fault,
                "time_to_impact": _r(w.time_to_impact),
                "time_to_recover": _r(w.time_to_recover),
                "unavailability": _r(w.unavailability),
                "resolution": w.resolution,
            }
            for w in report.windows
        ],
        "probe_stats": [
            {
                "probe": s.probe,
                "phase": s.phase,
                "samples": s.samples,
                "failures": s.failures,
                "error_rate": round(s.error_rate, 6),
                "p50": _r(s.p50),
                "p90": _r(s.p90),
                "p99": _r(s.p99),
                "max": _r(s.max),
            }
            for s in report.stats
        ],
        "rollback": {"reverted": facts.reverted, "failed": facts.revert_failures},
        "process_restarts": facts.process_restarts,
        "samples": {
            "columns": SAMPLE_COLUMNS,
            "rows": [[s.probe, _r(s.at), s.phase, s.ok, _r(s.latency), _r(s.lag), s.error] for s in timeline.samples],
        },
    }


def write_json(report: Report, path: Path) -> None:
    path.write_text(json.dumps(to_json(report), indent=1) + "\n", encoding="utf-8")
