"""report.json: the machine-readable record of a run, versioned by its `schema` field.

`to_json` writes everything the renderers need; `from_json` rebuilds the Report from it, so a
report can be rendered again (`drillctl report`) or compared (`drillctl compare`) from the file alone.
Its JSON Schema is in `report_schema.py`.
"""

from __future__ import annotations

import functools
import json
import types
from collections.abc import Mapping, Sequence
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from orchestrator.model.alerts import (
    AlertChange,
    AlertObservations,
    AlertRule,
    DeliveredAlert,
    Delivery,
    DetectionStep,
    DetectionTimeline,
    Unanswered,
)
from orchestrator.model.findings import Example, OperationFile, OperationStats, WorkloadResult
from orchestrator.model.timeline import Bucket, FaultMark, PhaseMark, Sample, SampleFile, SampleSeries, Timeline
from orchestrator.model.units import unit_of
from orchestrator.model.verdict import ProbeStats, RecoveryWindow, SlaVerdict
from orchestrator.reporting.document import ReportFormatError, read_document, report_path
from orchestrator.reporting.report import SCHEMA, DrillInfo, Report, RunbookSection, RunFacts
from orchestrator.sample_store import StoredSamples
from orchestrator.stop_conditions import Stop

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")

SAMPLE_COLUMNS = ["probe", "at", "phase", "ok", "latency", "lag", "error"]
BUCKET_COLUMNS = [f.name for f in fields(Bucket)]


def _link(section: RunbookSection | None) -> dict[str, str] | None:
    if section is None:
        return None
    return {"ref": section.ref, "heading": section.heading, "path": str(section.path)}


def _r(value: float | None) -> float | None:
    """Figures to the nanosecond: float noise goes, and a re-rendered report shows the same digits."""
    return None if value is None else round(value, 9)


def _us(value: float | None) -> float | None:
    """Sample times and latencies to the microsecond, which keeps report.json small."""
    return None if value is None else round(value, 6)


def to_json(report: Report) -> dict[str, Any]:
    facts, drill, timeline = report.facts, report.drill, report.timeline
    verdict = report.verdict
    return {
        "schema": SCHEMA,
        "drill": {
            "name": drill.name,
            "file": str(drill.file),
            "description": drill.description,
            "runbook": _link(report.runbook(drill.runbook)),
            "seed": drill.seed,
            "slas_declared": drill.slas_declared,
        },
        "run": {
            "id": facts.run_id,
            "status": report.status,
            "verdict": verdict.outcome,
            "failed_slas": list(verdict.failed),
            "marginal_slas": list(verdict.marginal),
            "reason": facts.reason,
            "stopped_by": None if facts.stopped_by is None else facts.stopped_by.to_json(),
            "exit_code": report.exit_code,
            "injected": facts.injected,
            "seed": drill.seed,
            "started_at": facts.started_at.isoformat(),
            "finished_at": facts.finished_at.isoformat(),
            "interval": timeline.interval,
            "end": _r(timeline.end),
            "clock": "monotonic seconds since the first sample was scheduled",
            "percentiles": "exact, nearest rank over every completed sample",
        },
        "environment": dict(report.environment),
        "probes": list(timeline.probes),
        "phases": [{"name": p.name, "start": _r(p.start), "end": _r(p.end)} for p in timeline.phases],
        "faults": [
            {
                "name": f.name,
                "type": f.type,
                "params": dict(f.params),
                "scheduled_start": _r(f.scheduled_start),
                "scheduled_end": _r(f.scheduled_end),
                "injected_at": _r(f.injected_at),
                "reverted_at": _r(f.reverted_at),
                "ended_at": _r(f.ended_at),
                "error": f.error,
                "runbook": _link(report.runbook(f.runbook)),
                "touched": list(f.touched),
                "seed": f.seed,
                "revert_notes": list(f.revert_notes),
            }
            for f in timeline.faults
        ],
        "slas": [
            {
                "name": v.name,
                "type": v.type,
                "passed": v.passed,
                "result": v.result,
                "marginal": v.marginal,
                "measured": _r(v.measured),
                "threshold": v.threshold,
                "margin": _r(v.margin),
                "resolution": _r(v.resolution),
                "unit": v.unit,
                "detail": v.detail,
                "probes": list(v.probes),
                "phase": v.phase,
                "window_from": _r(v.window_from),
                "window_to": _r(v.window_to),
                "reference": v.reference,
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
                "longest_outage": _r(w.longest_outage),
                "recovered_at": _r(w.recovered_at),
                "recovery": w.recovery,
                "failing_at_injection": w.failing_at_injection,
                "resolution": _r(w.resolution),
                "sampler_lag": _r(w.sampler_lag),
            }
            for w in report.windows
        ],
        "probe_stats": [
            {
                "probe": s.probe,
                "phase": s.phase,
                "fault": s.fault,
                "samples": s.samples,
                "failures": s.failures,
                "error_rate": _r(s.error_rate),
                "availability": _r(s.availability),
                "p50": _r(s.p50),
                "p90": _r(s.p90),
                "p99": _r(s.p99),
                "p999": _r(s.p999),
                "max": _r(s.max),
                "lag_p50": _r(s.lag_p50),
                "lag_p99": _r(s.lag_p99),
                "lag_max": _r(s.lag_max),
                "jitter": _r(s.jitter),
            }
            for s in report.stats
        ],
        "runbooks": {
            ref: {"heading": s.heading, "anchor": s.anchor, "path": str(s.path), "text": s.text}
            for ref, s in report.runbooks.items()
        },
        "rollback": {"reverted": facts.reverted, "failed": facts.revert_failures},
        "process_restarts": facts.process_restarts,
        "samples": _samples(report),
        **({} if timeline.workload is None else {"workload": _workload(timeline.workload)}),
        **({} if timeline.alerts is None else {"alerts": _alerts(timeline.alerts)}),
        **({"detection": [_detection(d) for d in report.detection]} if report.detection else {}),
    }


def _figures(item: DataclassInstance) -> dict[str, Any]:
    """A flat dataclass's fields, floats to the nanosecond."""
    return {f.name: _r(v) if isinstance(v := getattr(item, f.name), float) else v for f in fields(item)}


def _workload(w: WorkloadResult) -> dict[str, Any]:
    """The checker's findings (operations.bin holds every operation; report.json holds none)."""
    nested = {"examples", "stats", "file"}
    return {
        **{k: v for k, v in _figures(w).items() if k not in nested},
        "examples": [_figures(e) for e in w.examples],
        "stats": [_figures(s) for s in w.stats],
        "file": None if w.file is None else _figures(w.file),
    }


def _alerts(a: AlertObservations) -> dict[str, Any]:
    """What the alert watcher and the webhook receiver saw, times to the nanosecond like every figure."""
    return {
        "prometheus": a.prometheus,
        "poll_interval": a.poll_interval,
        "polls": a.polls,
        "failed_polls": a.failed_polls,
        "widest_gap": _r(a.widest_gap),
        "first_poll": _r(a.first_poll),
        "last_poll": _r(a.last_poll),
        "receiver": a.receiver,
        "warnings": list(a.warnings),
        "rules": [
            {
                "name": r.name,
                "group": r.group,
                "hold": r.hold,
                "interval": r.interval,
                "annotations": dict(r.annotations),
            }
            for r in a.rules
        ],
        "changes": [
            {
                "alert": c.alert,
                "state": c.state,
                "at": _r(c.at),
                "since": _r(c.since),
                "labels": dict(c.labels),
                "annotations": dict(c.annotations),
            }
            for c in a.changes
        ],
        "unanswered": [
            {
                "after": _r(u.after),
                "first": _r(u.first),
                "last": _r(u.last),
                "failures": u.failures,
                "error": u.error,
                "until": _r(u.until),
            }
            for u in a.unanswered
        ],
        "deliveries": [
            {
                "at": _r(d.at),
                "status": d.status,
                "receiver": d.receiver,
                "alerts": [
                    {"status": x.status, "labels": dict(x.labels), "annotations": dict(x.annotations)} for x in d.alerts
                ],
            }
            for d in a.deliveries
        ],
    }


def _detection(d: DetectionTimeline) -> dict[str, Any]:
    return {
        "fault": d.fault,
        "alert": d.alert,
        "steps": [{"name": s.name, "at": _r(s.at), "resolution": _r(s.resolution)} for s in d.steps],
        "runbook_url": d.runbook_url,
        "runbook_problem": d.runbook_problem,
        "fault_runbook": d.fault_runbook,
    }


def _samples(report: Report) -> dict[str, Any]:
    """Every sample (columnar) for a short run; for a long one, its SampleSeries and where samples.bin is."""
    timeline, series = report.timeline, report.series
    ref = timeline.samples_file
    file = None if ref is None else {"path": ref.path, "sha256": ref.sha256, "bytes": ref.bytes, "samples": ref.samples}
    if series is None:
        rows = [[s.probe, _us(s.at), s.phase, s.ok, _us(s.latency), _us(s.lag), s.error] for s in timeline.samples]
        return {"columns": SAMPLE_COLUMNS, "rows": rows, **({} if file is None else {"file": file})}
    buckets = [[getattr(b, c) for c in BUCKET_COLUMNS] for b in series.buckets]
    return {
        "count": series.samples,
        "file": file,
        "series": {"width": series.width, "until": series.until, "columns": BUCKET_COLUMNS, "rows": buckets},
    }


def render_json(report: Report) -> str:
    return json.dumps(to_json(report), indent=1) + "\n"


def write_json(report: Report, path: Path) -> None:
    path.write_text(render_json(report), encoding="utf-8")


def _ref(link: dict[str, Any] | None) -> str | None:
    return None if link is None else str(link["ref"])


def _rebuild(cls: type[T], row: dict[str, Any], **converted: Any) -> T:
    """The dataclass `to_json` wrote as `row`: each field from its key, or from `converted` where JSON
    holds it another way (a runbook link for its ref, a list for a tuple). A field added since the report
    was written keeps its default."""
    taken = {f.name: row[f.name] for f in fields(cls) if f.name in row and f.name not in converted}
    return _checked(cls(**taken, **converted))


def _checked(value: T) -> T:
    """`value`, once every field holds what its annotation says (TypeError naming the field otherwise): a
    hostile report.json fails here, clearly, and not later in a renderer that formats a string as a number."""
    for name, hint in _hints(type(value)).items():
        if not _fits(getattr(value, name), hint):
            raise TypeError(f"{type(value).__name__}.{name} is not {hint}: {getattr(value, name)!r:.80}")
    return value


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    hints = get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls)}


def _fits(value: Any, hint: Any) -> bool:
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return True
    if origin in (Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is tuple or origin is list:
        return isinstance(value, origin) and all(_fits(v, args[0]) for v in value)
    if origin in (dict, Mapping):
        return isinstance(value, Mapping) and all(_fits(k, args[0]) and _fits(v, args[1]) for k, v in value.items())
    if origin is Sequence:
        return isinstance(value, Sequence)  # rows were checked as they were rebuilt; samples.bin is read later
    return isinstance(value, origin or hint)


def from_json(document: dict[str, Any], run_dir: Path) -> Report:
    """The Report that `to_json` wrote. `run_dir` is where the report now lives (links are relative to it)."""
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        found = document.get("schema") if isinstance(document, dict) else type(document).__name__
        raise ReportFormatError(f"not a {SCHEMA} report (schema: {found!r})")
    try:
        return _from_json(document, run_dir)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as e:
        raise ReportFormatError(f"malformed {SCHEMA} report: {type(e).__name__}: {e}") from e


def _from_json(doc: dict[str, Any], run_dir: Path) -> Report:
    run, drill = doc["run"], doc["drill"]
    samples, series, samples_file = _read_samples(doc["samples"], run_dir)
    timeline = _checked(
        Timeline(
            interval=float(run["interval"]),
            probes=tuple(doc["probes"]),
            samples=samples,
            phases=tuple(_rebuild(PhaseMark, p) for p in doc["phases"]),
            faults=tuple(
                _rebuild(
                    FaultMark,
                    f,
                    params=dict(f["params"]),
                    runbook=_ref(f["runbook"]),
                    touched=tuple(f.get("touched", ())),
                    revert_notes=tuple(f.get("revert_notes", ())),
                )
                for f in doc["faults"]
            ),
            end=float(run["end"]),
            samples_file=samples_file,
            workload=None if doc.get("workload") is None else _read_workload(doc["workload"]),
            alerts=None if doc.get("alerts") is None else _read_alerts(doc["alerts"]),
        )
    )
    status = run["status"]
    facts = _checked(
        RunFacts(
            run_id=run["id"],
            run_dir=run_dir,
            started_at=datetime.fromisoformat(run["started_at"]),
            finished_at=datetime.fromisoformat(run["finished_at"]),
            status="completed" if status in ("passed", "failed") else status,
            reason=run["reason"],
            stopped_by=None if run["stopped_by"] is None else _checked(Stop(**run["stopped_by"])),
            injected=bool(run["injected"]),
            reverted=list(doc["rollback"]["reverted"]),
            revert_failures=list(doc["rollback"]["failed"]),
            toxiproxy_url=doc["environment"].get("toxiproxy_url"),
            process_restarts={str(k): int(n) for k, n in doc["process_restarts"].items()},
        )
    )
    verdicts = [
        _rebuild(
            SlaVerdict,
            v,
            passed=bool(v["passed"]),
            threshold=float(v["threshold"]),
            unit=unit_of(v["unit"]),
            runbook=_ref(v["runbook"]),
            probes=tuple(v["probes"]),
        )
        for v in doc["slas"]
    ]
    windows = [
        _rebuild(
            RecoveryWindow,
            w,
            unavailability=float(w["unavailability"]),
            resolution=float(w["resolution"]),
            longest_outage=float(w["longest_outage"]),
            failing_at_injection=bool(w["failing_at_injection"]),
            sampler_lag=float(w["sampler_lag"]),
        )
        for w in doc["recovery_windows"]
    ]
    stats = [
        _rebuild(ProbeStats, s, samples=int(s["samples"]), failures=int(s["failures"])) for s in doc["probe_stats"]
    ]
    runbooks = {ref: _rebuild(RunbookSection, r, ref=ref, path=Path(r["path"])) for ref, r in doc["runbooks"].items()}
    return _checked(
        Report(
            drill=_rebuild(
                DrillInfo,
                drill,
                file=Path(drill["file"]),
                runbook=_ref(drill["runbook"]),
                slas_declared=int(drill["slas_declared"]),
            ),
            facts=facts,
            timeline=timeline,
            verdicts=verdicts,
            windows=windows,
            stats=stats,
            runbooks=runbooks,
            environment=dict(doc["environment"]),
            series=series,
            detection=[
                _rebuild(DetectionTimeline, d, steps=tuple(_rebuild(DetectionStep, s) for s in d["steps"]))
                for d in doc.get("detection", ())
            ],
        )
    )


def _read_workload(doc: dict[str, Any]) -> WorkloadResult:
    return _rebuild(
        WorkloadResult,
        doc,
        rate=float(doc["rate"]),
        rpo=float(doc["rpo"]),
        write_unavailable=float(doc["write_unavailable"]),
        write_unavailable_total=float(doc["write_unavailable_total"]),
        examples=tuple(_rebuild(Example, e) for e in doc["examples"]),
        stats=tuple(_rebuild(OperationStats, s) for s in doc["stats"]),
        file=None if doc["file"] is None else _rebuild(OperationFile, doc["file"]),
    )


def _read_alerts(doc: dict[str, Any]) -> AlertObservations:
    return _rebuild(
        AlertObservations,
        doc,
        poll_interval=float(doc["poll_interval"]),
        widest_gap=float(doc["widest_gap"]),
        warnings=tuple(doc["warnings"]),
        rules=tuple(
            _rebuild(
                AlertRule, r, hold=float(r["hold"]), interval=float(r["interval"]), annotations=dict(r["annotations"])
            )
            for r in doc["rules"]
        ),
        changes=tuple(
            _rebuild(AlertChange, c, labels=dict(c["labels"]), annotations=dict(c["annotations"]))
            for c in doc["changes"]
        ),
        deliveries=tuple(
            _rebuild(
                Delivery,
                d,
                alerts=tuple(
                    _rebuild(DeliveredAlert, x, labels=dict(x["labels"]), annotations=dict(x["annotations"]))
                    for x in d["alerts"]
                ),
            )
            for d in doc["deliveries"]
        ),
        unanswered=tuple(_rebuild(Unanswered, u) for u in doc.get("unanswered", [])),
    )


def _read_samples(
    doc: dict[str, Any], run_dir: Path
) -> tuple[Sequence[Sample], SampleSeries | None, SampleFile | None]:
    """Inline samples; or a long run's series, with its samples.bin read on first use if it is there."""
    ref = None if doc.get("file") is None else _rebuild(SampleFile, doc["file"])
    if "series" not in doc:
        columns = doc["columns"]
        rows = [dict(zip(columns, row, strict=True)) for row in doc["rows"]]
        return tuple(_rebuild(Sample, r, ok=bool(r["ok"])) for r in rows), None, ref
    found = doc["series"]
    buckets = tuple(_rebuild(Bucket, dict(zip(found["columns"], row, strict=True))) for row in found["rows"])
    series = _checked(
        SampleSeries(
            width=float(found["width"]), samples=int(doc["count"]), until=float(found["until"]), buckets=buckets
        )
    )
    if ref is None or Path(ref.path).name != ref.path or not (run_dir / ref.path).is_file():
        return (), series, ref
    return StoredSamples(run_dir / ref.path, ref), series, ref


def read_report(run_dir: Path) -> Report:
    """The Report of a run directory (or of a report.json file), from report.json alone."""
    path = report_path(run_dir)
    return from_json(read_document(path), path.parent)
