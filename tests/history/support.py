"""Hand-made history: runs as records, and as report.json files written by the real writer."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from orchestrator.history.model import TREND_FAULT_METRICS, DrillSeries, FaultFigure, RunRecord, Series, SlaFigure
from orchestrator.model.timeline import FaultMark, PhaseMark, Timeline
from orchestrator.model.verdict import RecoveryWindow, SlaVerdict
from orchestrator.reporting.json_report import write_json
from orchestrator.reporting.report import DrillInfo, Report, RunFacts
from tests.support import drill as drill_document

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
LIMIT = 2.0
"""The recovery SLA's threshold in every hand-made run."""


def record(
    n: int,
    recover: float | None,
    *,
    drill: str = "orders",
    labels: dict[str, str] | None = None,
    unavailable: float | None = None,
    resolution: float = 0.05,
) -> RunRecord:
    """Run `n` of a drill, an hour after run n-1: a recovery SLA measured at `recover` and fault `cut`."""
    passed = recover is not None and recover <= LIMIT
    outage = unavailable if unavailable is not None else (recover or 3.0) + 0.2
    return RunRecord(
        run_id=f"{drill}-{n:05d}",
        drill=drill,
        started_at=T0 + timedelta(hours=n),
        finished_at=T0 + timedelta(hours=n, seconds=12),
        status="passed" if passed else "failed",
        verdict="PASS" if passed else "FAIL",
        labels=labels or {},
        slas=(
            SlaFigure(
                "recovers",
                "recovery_window",
                "s",
                passed,
                recover,
                LIMIT,
                None if recover is None else LIMIT - recover,
                resolution,
            ),
        ),
        faults=(
            FaultFigure(
                "cut",
                "after_revert" if recover is not None else "not_recovered",
                0.1,
                recover,
                outage,
                outage,
                resolution,
            ),
        ),
    )


def tiny_drill(name: str) -> dict[str, object]:
    """A drill with nothing to start and nothing to inject: a command probe and one SLA."""
    return drill_document(
        name,
        steady_state={"interval": "100ms", "probes": [{"type": "command", "name": "noop", "argv": ["true"]}]},
        phases={"baseline": "300ms", "recovery": "300ms"},
        slas=[{"name": "quiet", "type": "error_rate", "phase": "baseline", "max": 0.5}],
    )


def report_of(rec: RunRecord, run_dir: Path) -> Report:
    """A Report holding the figures of a hand-made record (no samples), as `drillctl run` would build it."""
    verdicts = [
        SlaVerdict(s.name, s.type, s.passed, s.measured, s.threshold, s.unit, "", None, resolution=s.resolution)
        for s in rec.slas
    ]
    windows = [
        RecoveryWindow(
            f.fault,
            f.time_to_impact,
            f.time_to_recover,
            f.unavailability,
            f.resolution,
            longest_outage=f.longest_outage,
            recovery="not_recovered" if f.recovery == "not_recovered" else "after_revert",
        )
        for f in rec.faults
    ]
    phases = (PhaseMark("baseline", 0.0, 1.0), PhaseMark("fault", 1.0, 3.0), PhaseMark("recovery", 3.0, 6.0))
    faults = tuple(FaultMark(f.fault, "network.down", {}, 1.0, 3.0, 1.0, 3.0) for f in rec.faults)
    return Report(
        drill=DrillInfo(rec.drill, Path(f"{rec.drill}.yaml"), "", None, None, len(verdicts)),
        facts=RunFacts(
            run_id=rec.run_id,
            run_dir=run_dir,
            started_at=rec.started_at,
            finished_at=rec.finished_at,
            status="completed",
            reason=None,
            injected=True,
            reverted=[f.fault for f in rec.faults],
            revert_failures=[],
            toxiproxy_url=None,
            process_restarts={},
        ),
        timeline=Timeline(0.05, ("stock",), (), phases, faults, 6.0),
        verdicts=verdicts,
        windows=windows,
        stats=[],
        runbooks={},
        environment={"drillctl": "test", **({"labels": dict(rec.labels)} if rec.labels else {})},
    )


def write_run(runs_dir: Path, rec: RunRecord) -> Path:
    """`<runs_dir>/<run id>/report.json` of a hand-made record, through the real report writer."""
    run_dir = runs_dir / rec.run_id
    run_dir.mkdir(parents=True)
    write_json(report_of(rec, run_dir), run_dir / "report.json")
    return run_dir


def series_of(records: list[RunRecord], with_labels: bool = False) -> list[DrillSeries]:
    """The plain reading of `HistoryStore.series`, from records (oldest first): what the store's queries must
    agree with (a name repeated in one run: its largest value)."""
    out = []
    for drill in dict.fromkeys(r.drill for r in records):
        runs = [r for r in records if r.drill == drill]
        slas = dict.fromkeys(s.name for r in runs for s in r.slas)
        units = {name: next(s.unit for r in runs for s in r.slas if s.name == name) for name in slas}
        faults = dict.fromkeys(f.fault for r in runs for f in r.faults)
        figures = [
            Series(
                f"sla {name}",
                "measured",
                "ratio" if units[name] == "ratio" else "s",
                tuple(_largest(s.measured for s in r.slas if s.name == name) for r in runs),
            )
            for name in slas
        ]
        figures += [
            Series(
                f"fault {fault}",
                metric,
                "s",
                tuple(_largest(getattr(f, metric) for f in r.faults if f.fault == fault) for r in runs),
            )
            for fault in faults
            for metric in TREND_FAULT_METRICS
        ]
        out.append(
            DrillSeries(
                drill=drill,
                run_ids=tuple(r.run_id for r in runs),
                started_at=tuple(r.started_at for r in runs),
                statuses=tuple(r.status for r in runs),
                verdicts=tuple(r.verdict for r in runs),
                figures=tuple(figures),
                labels=tuple(r.labels for r in runs) if with_labels else (),
            )
        )
    return out


def _largest(values: Iterable[float | None]) -> float | None:
    return max((v for v in values if v is not None), default=None)
